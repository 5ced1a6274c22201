using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Serving.Tests.Shared;

namespace Serving.Deploy.Tests.Support;

/// The server started the way the image starts it, without a container runtime: the Dockerfile's
/// ENTRYPOINT + CMD and ENV, with what `docker run -v FIXTURE:/models -p 127.0.0.1:PORT:PORT -e ...` would
/// change: /models is the fixture checkpoint, the server listens on loopback on free ports. /app (the
/// published server) is the server's build output, run by the dotnet host instead of the apphost.
internal sealed partial class ContainerProcess : IAsyncDisposable
{
    const string AppDirectory = "/app/";
    const string ModelsVolume = "/models";
    const int SigTerm = 15;

    readonly Process _process;
    readonly StringBuilder _output = new();

    ContainerProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public Uri BaseAddress { get; }

    public string Output { get { lock (_output) return _output.ToString(); } }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static ContainerProcess Start(DockerfileModel image, string fixtureModel)
    {
        var command = image.StartCommand;
        if (command.Count == 0 || !command[0].StartsWith(AppDirectory, StringComparison.Ordinal))
            throw new InvalidOperationException($"the entrypoint should run the server from {AppDirectory}: {string.Join(' ', command)}");
        var app = Path.Combine(RepoPaths.ServerOutput, command[0][AppDirectory.Length..] + ".dll");
        if (!File.Exists(app)) throw new FileNotFoundException("server build output missing", app);

        var start = new ProcessStartInfo(LocalProcess.DotnetHost(), [app, .. command.Skip(1)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = RepoPaths.ServerOutput,
        };
        foreach (var (key, value) in image.Environment)
            start.Environment[key] = value.StartsWith(ModelsVolume, StringComparison.Ordinal)
                ? fixtureModel + value[ModelsVolume.Length..] : value;
        var port = LocalProcess.FreePort();
        start.Environment[$"{ServerContract.EnvironmentPrefix}Host"] = "127.0.0.1";
        start.Environment[$"{ServerContract.EnvironmentPrefix}Port"] = port.ToString();
        if (image.Environment.ContainsKey($"{ServerContract.EnvironmentPrefix}GrpcPort"))
            start.Environment[$"{ServerContract.EnvironmentPrefix}GrpcPort"] = LocalProcess.FreePort().ToString();
        return new ContainerProcess(Process.Start(start)!, new Uri($"http://127.0.0.1:{port}"));
    }

    /// Polls path until it answers 200; fails early if the process exits.
    public async Task WaitUntilOkAsync(HttpClient client, string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process.HasExited) throw new InvalidOperationException($"server exited with {_process.ExitCode}:\n{Output}");
            try
            {
                using var response = await client.GetAsync(new Uri(BaseAddress, path), cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(200, cancellationToken);
        }
        throw new TimeoutException($"{path} not 200 after {timeout}:\n{Output}");
    }

    /// What `docker stop` does first: the image's STOPSIGNAL (SIGTERM).
    public void Terminate()
    {
        if (!_process.HasExited && SendSignal(_process.Id, SigTerm) != 0)
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); return true; }
        catch (OperationCanceledException) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        Terminate();
        if (!await WaitForExitAsync(TimeSpan.FromSeconds(30))) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    void Append(string? line)
    {
        if (line == null) return;
        lock (_output) _output.AppendLine(line);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
