using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's allowed_token_ids: only those tokens are sampled, over HTTP and gRPC; ids outside the vocabulary or an empty
/// list are a 400 / INVALID_ARGUMENT naming the field.
[Collection("server")]
public sealed class AllowedTokenIdsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    static readonly int[] Allowed = [17, 42, 99, 123];

    [Fact]
    public async Task OnlyTheAllowedTokensAreGenerated()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 12, ignore_eos = true, temperature = 1.0, seed = 3,
            allowed_token_ids = Allowed, return_token_ids = true,
        });
        Assert.Equal(200, status);
        var ids = body!["choices"]![0]!["token_ids"]!.AsArray().Select(id => id!.GetValue<int>()).ToArray();
        Assert.Equal(12, ids.Length);
        Assert.All(ids, id => Assert.Contains(id, Allowed));

        var grpc = await GenerateResult.ReadAsync(_server.Grpc(), new Serving.Grpc.V1.GenerateRequest
        {
            Model = RunningServer.Model, Text = "Hello",
            Sampling = new() { MaxTokens = 12, IgnoreEos = true, AllowedTokenIds = { Allowed } },
        });
        Assert.All(grpc.TokenIds(), id => Assert.Contains(id, Allowed));
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("[100000]")]
    public async Task ABadListIsRefused(string list)
    {
        var (status, body) = await _server.PostAsync("/v1/completions",
            $$"""{"model": "{{RunningServer.Model}}", "prompt": "Hello", "max_tokens": 2, "allowed_token_ids": {{list}}}""");
        Assert.Equal(400, status);
        Assert.Equal("allowed_token_ids", body!["error"]!["param"]!.GetValue<string>());
    }
}
