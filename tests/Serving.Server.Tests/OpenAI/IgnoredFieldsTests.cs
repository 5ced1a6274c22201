using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// A field the server does not read is ignored, as vLLM ignores it, and named in one warning per request so an
/// operator sees what a client asked for in vain.
public sealed class IgnoredFieldsTests
{
    [Fact]
    public async Task UnknownFieldsAreServedAndNamedInAWarning()
    {
        await using var server = await RunningServer.StartAsync();
        var log = LogCapture.AttachTo(server);
        var (status, _) = await server.PostAsync("/v1/chat/completions", new Dictionary<string, object?>
        {
            ["model"] = RunningServer.Model, ["messages"] = new[] { new { role = "user", content = "Hi" } }, ["max_tokens"] = 2,
            ["spaces_between_special_tokens"] = false, ["vllm_xargs"] = new { budget = 3 },
        });
        Assert.Equal(200, status);
        Assert.Equal(["The following fields were present in the request but ignored: spaces_between_special_tokens, vllm_xargs"], log.Of(34));
        (status, _) = await server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "Hi", max_tokens = 2, temperature = 0 });
        Assert.Equal(200, status);
        Assert.Single(log.Of(34));
    }
}
