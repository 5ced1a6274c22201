using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// continue_final_message (transformers' and vLLM's): the prompt ends inside the final assistant message, so the
/// model continues a prefilled answer; over HTTP chat, /tokenize and gRPC alike.
[Collection("server")]
public sealed class ContinueFinalMessageTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    static readonly object[] Prefilled =
    [
        new { role = "user", content = "Capital of France?" },
        new { role = "assistant", content = "The capital is " },
    ];

    [Fact]
    public async Task ThePromptEndsInsideThePrefilledAnswer()
    {
        var (status, tokenized) = await _server.PostAsync("/tokenize", new
        {
            model = RunningServer.Model, messages = Prefilled, continue_final_message = true,
        });
        Assert.Equal(200, status);
        var ids = tokenized!["tokens"]!.AsArray().Select(id => id!.GetValue<int>()).ToArray();
        var (_, text) = await _server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = ids });
        // the fixture's ChatML template: the assistant turn is open, its trailing space kept
        Assert.EndsWith("<|im_start|>assistant\nThe capital is ", text!["prompt"]!.GetValue<string>());

        var (_, chat) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Prefilled, continue_final_message = true, max_tokens = 2, return_token_ids = true,
        });
        Assert.Equal(ids, chat!["prompt_token_ids"]!.AsArray().Select(id => id!.GetValue<int>()));

        var grpc = await _server.Grpc().TokenizeAsync(new TokenizeRequest
        {
            Model = RunningServer.Model,
            Chat = new ChatInput
            {
                Messages = { new ChatMessage { Role = "user", Content = "Capital of France?" }, new ChatMessage { Role = "assistant", Content = "The capital is " } },
                ContinueFinalMessage = true,
            },
        });
        Assert.Equal(ids, grpc.TokenIds);
    }

    [Fact]
    public async Task WithAGenerationPromptItIsRefused()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Prefilled, continue_final_message = true, add_generation_prompt = true, max_tokens = 2,
        });
        Assert.Equal(400, status);
        Assert.Equal("continue_final_message", body!["error"]!["param"]!.GetValue<string>());
    }
}
