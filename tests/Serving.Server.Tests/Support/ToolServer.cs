namespace Serving.Server.Tests.Support;

/// The real server on the embedded default model with auto tool choice read by the hermes parser and answers'
/// thinking read by the qwen3 reasoning parser: the server the structured-output, tool-calling and reasoning tests
/// share.
public sealed class ToolServer : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() =>
        // a small KV pool (64k tokens, plenty for 100 requests of 256) keeps CPU attention over the pool cheap
        Server = await RunningServer.StartAsync(["--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3",
            "--kv-cache-memory", "16777216"], model: null);

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}

[CollectionDefinition("tools")]
public sealed class ToolServerCollection : ICollectionFixture<ToolServer>;
