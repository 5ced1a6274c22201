using Serving.LoadGen.Clients;

namespace Serving.LoadGen.Tests.Clients;

public sealed class SseChunkReaderTests
{
    // A /v1/completions stream as our server sends it (captured), with usage and return_token_ids
    const string CompletionStream = """
        data: {"id":"cmpl-1","created":1,"model":"m","choices":[{"index":0,"text":"ans","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":[5,6,7,8],"token_ids":[436]}],"usage":null,"object":"text_completion","system_fingerprint":null}

        data: {"id":"cmpl-1","created":1,"model":"m","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":null,"stop_reason":null,"token_ids":[200]}],"usage":null,"object":"text_completion","system_fingerprint":null}

        data: {"id":"cmpl-1","created":1,"model":"m","choices":[{"index":0,"text":" are","logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":[394]}],"usage":null,"object":"text_completion","system_fingerprint":null}

        data: {"id":"cmpl-1","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}},"object":"text_completion","system_fingerprint":null}

        data: [DONE]
        """;

    const string ChatStream = """
        data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}

        data: {"id":"c","choices":[{"index":0,"delta":{"content":"his"},"finish_reason":null}],"usage":null}

        data: {"id":"c","choices":[{"index":0,"delta":{"content":"str"},"finish_reason":"length"}],"usage":null}

        data: [DONE]
        """;

    // A chat stream of a reasoning model under --reasoning-parser (captured): the thinking, then the content
    const string ReasoningStream = """
        data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}

        data: {"id":"c","choices":[{"index":0,"delta":{"reasoning":"p"},"finish_reason":null}],"usage":null}

        data: {"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"a"},"finish_reason":null}],"usage":null}

        data: {"id":"c","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}],"usage":null}

        data: [DONE]
        """;

    static SseChunkReader Read(string stream, bool chat, StreamTimer timer, Action<string>? onText = null)
    {
        var reader = new SseChunkReader(chat, timer, onText);
        foreach (var line in stream.Split('\n')) reader.OnLine(line.TrimEnd('\r'));
        return reader;
    }

    [Fact]
    public void EveryChunkWithTokensIsAnArrivalEvenWithoutText()
    {
        var timer = new StreamTimer();
        var printed = new List<string>();
        var reader = Read(CompletionStream, chat: false, timer, printed.Add);
        Assert.True(reader.Done);
        Assert.Null(reader.Error);
        Assert.Equal(3, timer.NumChunks);          // the token whose bytes are not yet a character counts too
        Assert.Equal(2, timer.Itl.Count);
        Assert.NotNull(timer.Ttft);
        Assert.Equal((3, 4), (reader.OutputTokens, reader.UsagePromptTokens!.Value));
        Assert.Equal("ans are", reader.Text);
        Assert.Equal(["ans", " are"], printed);
    }

    [Fact]
    public void ChatDeltasCountWhenTheyCarryContentAndTokensFallBackToChunks()
    {
        var timer = new StreamTimer();
        var reader = Read(ChatStream, chat: true, timer);
        Assert.Equal("hisstr", reader.Text);
        Assert.Equal(2, timer.NumChunks);          // the role-only first delta is not output
        Assert.Equal(2, reader.OutputTokens);      // no usage, no token ids: one token per output chunk
    }

    [Fact]
    public void ThinkingIsOutputLikeContent()
    {
        var timer = new StreamTimer();
        var printed = new List<string>();
        var reader = Read(ReasoningStream, chat: true, timer, printed.Add);
        Assert.Equal("paok", reader.Text);
        Assert.Equal(3, timer.NumChunks);          // the first token is the first thought
        Assert.Equal(["p", "a", "ok"], printed);
    }

    [Fact]
    public void AnErrorEventIsReported()
    {
        var reader = Read("""
            data: {"choices":[{"index":0,"text":"a","token_ids":[1]}]}

            data: {"error":{"message":"the engine loop failed","type":"server_error","param":null,"code":500}}

            data: [DONE]
            """, chat: false, new StreamTimer());
        Assert.Equal("the engine loop failed", reader.Error);
    }

    [Fact]
    public void ModelCardsReadTheServersKVFactsWhenPresent()
    {
        var card = System.Text.Json.Nodes.JsonNode.Parse("""
            {"id":"gqa","object":"model","max_model_len":256,
             "model_info":{"num_attention_heads":8,"num_key_value_heads":2,"head_dim":8,"vocab_size":512,"dtype":"float32",
                           "block_size":16,"kv_bytes_per_token":256,"kv_capacity_tokens":1048576}}
            """)!.AsObject();
        var info = ModelCards.Parse(card);
        Assert.Equal(("gqa", 256, 2, 256L, 1048576L, 512), (info.ModelId, info.MaxModelLen!.Value, info.NumKVHeads!.Value,
            info.KVBytesPerToken!.Value, info.KVCapacityTokens!.Value, info.VocabSize!.Value));
        var plain = ModelCards.Parse(System.Text.Json.Nodes.JsonNode.Parse("""{"id":"x","max_model_len":128}""")!.AsObject());
        Assert.Null(plain.KVBytesPerToken);
    }
}
