using System.Net.Sockets;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Serving.Engine;
using Serving.Server.Engine;
using Serving.Server.Options;
using Serving.Server.Tests.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Connections;

/// vLLM's --uds: the OpenAI API on a Unix domain socket instead of a TCP port, open to every user as uvicorn leaves
/// it (0o666, whatever the umask); a socket a stopped server left is replaced, keeping its permissions; a live
/// server's or a plain file at the path is refused naming it.
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]   // file modes: the suite runs on Linux (.ci/run)
public sealed class UnixSocketTests : IDisposable
{
    readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    static async Task<WebApplication> StartAsync(string socket)
    {
        var app = ServerApp.Build(["--uds", socket, "--model", Fixtures.Dir("llama-gqa"), "--served-model-name", "tiny"], DefaultEngine.Create);
        await app.StartAsync();
        await app.Services.GetRequiredService<ILlmEngine>().WaitUntilReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        return app;
    }

    static HttpClient ClientOf(string socket) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var connection = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await connection.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancellationToken);
            return new NetworkStream(connection, ownsSocket: true);
        },
    }) { BaseAddress = new Uri("http://localhost") };

    [Fact]
    public async Task TheApiIsServedOnTheSocket()
    {
        var socket = _dir.File("serving.sock");
        await using (var app = await StartAsync(socket))
        {
            using var client = ClientOf(socket);
            using var answer = await client.PostAsJsonAsync("/v1/completions", new { model = "tiny", prompt = "Hello", max_tokens = 3 });
            Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
            var body = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
            Assert.Equal(3, body["usage"]!["completion_tokens"]!.GetValue<int>());
            Assert.Equal(ReadWriteForEveryone, File.GetUnixFileMode(socket));
            // a second server on the same path is refused while the first listens
            Assert.Contains($"uds: another server is listening on '{socket}'",
                ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--uds", socket])).Validate());
        }
        // a socket left where nothing listens (bound, never listening: .NET would delete it on closing) is replaced
        using var left = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        left.Bind(new UnixDomainSocketEndPoint(socket));
        Assert.True(File.Exists(socket));
        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Empty(ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--uds", socket])).Validate());
        await using (var again = await StartAsync(socket))
        {
            using var client = ClientOf(socket);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        }
    }

    const UnixFileMode ReadWriteForEveryone = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead
        | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    [Fact]
    public void APlainFileOrAMissingFolderIsRefused()
    {
        var file = _dir.File("not-a-socket");
        File.WriteAllText(file, "data");
        Assert.Contains($"uds: '{file}' is a file, not a socket", ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--uds", file])).Validate());
        Assert.Contains("uds: the folder of '/no/such/folder/s.sock' does not exist",
            ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--uds", "/no/such/folder/s.sock"])).Validate());
    }
}
