using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// An empty text prompt is what the tokenizer makes of it, as in Hugging Face and vLLM: a tokenizer that adds
/// BOS gives [bos], which is a prompt; one that adds nothing gives [], which is refused as empty.
public sealed class EmptyPromptTests
{
    [Fact]
    public async Task AnEmptyPromptIsBosWhereTheTokenizerAddsOne()
    {
        await using var server = await RunningServer.StartAsync(model: "llama-sp-mqa");
        var bos = Fixtures.Reference("llama-sp-mqa").Tokenize[0].Ids[0];

        var (status, tokens) = await server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "" });
        Assert.Equal(200, status);
        Assert.Equal([bos], tokens!["tokens"]!.AsArray().Select(t => t!.GetValue<int>()));
        var (completionStatus, completion) = await server.PostAsync("/v1/completions",
            new { model = RunningServer.Model, prompt = "", max_tokens = 3, ignore_eos = true });
        Assert.Equal(200, completionStatus);
        Assert.Equal(1, completion!["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(3, completion["usage"]!["completion_tokens"]!.GetValue<int>());

        var grpc = server.Grpc();
        var tokenized = await grpc.TokenizeAsync(new TokenizeRequest { Text = "" });
        Assert.Equal([bos], tokenized.TokenIds);
        var generated = await GenerateResult.ReadAsync(grpc, GenerateResult.Greedy(3, text: ""));
        Assert.Equal(1, generated.Final.Usage.PromptTokens);
    }

    [Fact]
    public async Task AnEmptyPromptWithoutBosTokenizesToNothingAndIsRefused()
    {
        await using var server = await RunningServer.StartAsync();
        var (status, tokens) = await server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "" });
        Assert.Equal(200, status);
        Assert.Empty(tokens!["tokens"]!.AsArray());
        var (completionStatus, error) = await server.PostAsync("/v1/completions", new { model = RunningServer.Model, prompt = "" });
        Assert.Equal(400, completionStatus);
        Assert.Equal("prompt", error!["error"]!["param"]!.GetValue<string>());
    }
}
