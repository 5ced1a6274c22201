using System.ClientModel;
using OpenAI;
using OpenAI.Chat;
using Serving.Server.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Connections;

/// --root-path (vLLM's, FastAPI's root_path) through real Kestrel: behind a proxy that serves the API under a prefix,
/// the official OpenAI client pointed at the prefixed URL chats, and a proxy that strips the prefix reaches the same
/// routes without it; the playground page is served under the prefix too, and a root path that is no path is refused.
public sealed class RootPathTests
{
    [Fact]
    public async Task TheApiIsServedUnderTheRootPathAndWithoutIt()
    {
        await using var server = await RunningServer.StartAsync(["--root-path", "/llm/"], model: "llama-gqa");
        var client = new ChatClient(RunningServer.Model, new ApiKeyCredential(RunningServer.ApiKey),
            new OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "/llm/v1") });
        ChatCompletion answer = await client.CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        Assert.NotEmpty(answer.Content);

        using var prefixed = await server.Http.GetAsync("/llm/v1/models");
        Assert.Equal(200, (int)prefixed.StatusCode);
        using var stripped = await server.Http.GetAsync("/v1/models");
        Assert.Equal(200, (int)stripped.StatusCode);
        using var health = await server.Http.GetAsync("/llm/health");
        Assert.Equal(200, (int)health.StatusCode);
        using var page = await server.Http.GetAsync("/llm/");
        Assert.Equal(200, (int)page.StatusCode);
        Assert.Contains("text/html", page.Content.Headers.ContentType?.MediaType);
        // a path that only starts with the same letters is not under the prefix
        using var other = await server.Http.GetAsync("/llmx/v1/models");
        Assert.Equal(404, (int)other.StatusCode);
    }

    [Fact]
    public void ARootPathThatIsNoPathIsRefused()
    {
        Assert.Contains("root-path must be a path starting with '/' (got 'llm')", Options.ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--root-path", "llm"])).Validate());
        Assert.Empty(Options.ServerCommandLineTests.Bind(ServerCommandLine.ToConfiguration(["--root-path", "/llm"])).Validate());
    }
}
