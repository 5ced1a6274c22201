namespace Serving.LoadGen.Tests.Support;

/// One real server with its gRPC API on (llama-gqa served as "gqa"), shared by the tests of a class.
public sealed class GrpcLoopbackServer : IAsyncLifetime
{
    public LoopbackServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await LoopbackServer.StartAsync("llama-gqa", "gqa", grpc: true);

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}
