using System.Diagnostics;
using System.Net;
using System.Text;
using Serving.Tests.Shared;

namespace Serving.Server.Tests.Support;

/// The server as a process of its own (the dotnet host running Serving.Server.dll from this test's output, as
/// `dotnet run` would), for what only a whole process shows: its exit code, its descriptors, memory (RSS) and
/// threads, its log on stdout, and a lowered file-descriptor limit (bash's `ulimit -n`, soft and hard).
/// Listens on loopback on free ports; HTTP without an API key unless args give one.
public sealed class ServerProcess : IAsyncDisposable
{
    readonly Process _process;
    readonly StringBuilder _output = new();

    ServerProcess(Process process, Uri baseAddress, Uri grpcAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
        GrpcAddress = grpcAddress;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public Uri BaseAddress { get; }
    public Uri GrpcAddress { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// Starts `dotnet Serving.Server.dll --host 127.0.0.1 --port P --grpc-port G args`; maxOpenFiles runs it
    /// under `ulimit -n maxOpenFiles`.
    public static ServerProcess Start(IEnumerable<string> args, int? maxOpenFiles = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (port, grpcPort) = (LocalProcess.FreePort(), LocalProcess.FreePort());
        string[] server = [LocalProcess.DotnetHost(), Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll"),
            "--host", "127.0.0.1", "--port", $"{port}", "--grpc-port", $"{grpcPort}", .. args];
        var start = maxOpenFiles is { } limit
            ? new ProcessStartInfo("bash", ["-c", $"ulimit -n {limit} && exec \"$0\" \"$@\"", .. server])
            : new ProcessStartInfo(server[0], server[1..]);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.WorkingDirectory = AppContext.BaseDirectory;
        start.Environment["Logging__Console__FormatterName"] = "simple";
        start.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return new ServerProcess(Process.Start(start)!, new Uri($"http://127.0.0.1:{port}"), new Uri($"http://127.0.0.1:{grpcPort}"));
    }

    /// Polls /health/ready until 200; fails early, with the log, if the process exits.
    public async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (_process.HasExited) throw new InvalidOperationException($"the server exited with {_process.ExitCode}:\n{Output}");
            try
            {
                using var response = await client.GetAsync("/health/ready");
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // not listening yet
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"not ready after {timeout}:\n{Output}");
    }

    /// The exit code, or null if the process still runs after the timeout.
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// Resident memory, from /proc.
    public long RssBytes => StatusField("VmRSS:") * 1024;

    public int Threads => (int)StatusField("Threads:");

    public int OpenFiles => Directory.GetFiles($"/proc/{Pid}/fd").Length;

    /// User + system CPU time so far (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms).
    public TimeSpan CpuTime
    {
        get
        {
            var stat = File.ReadAllText($"/proc/{Pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return TimeSpan.FromMilliseconds((long.Parse(fields[11]) + long.Parse(fields[12])) * 10);
        }
    }

    long StatusField(string name)
    {
        var line = File.ReadLines($"/proc/{Pid}/status").First(l => l.StartsWith(name, StringComparison.Ordinal));
        return long.Parse(line[name.Length..].Trim().Split(' ')[0]);
    }

    /// SIGTERM, as a supervisor stops it.
    public void Terminate()
    {
        if (_process.HasExited) return;
        using var kill = Process.Start("kill", ["-TERM", $"{Pid}"]);
        kill.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        Terminate();
        if (await WaitForExitAsync(TimeSpan.FromSeconds(30)) is null) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }
}
