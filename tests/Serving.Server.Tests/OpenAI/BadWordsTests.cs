using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// vLLM's bad_words: a word the greedy answer writes is never written once banned, over HTTP and gRPC.
[Collection("server")]
public sealed class BadWordsTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    async Task<(int[] Ids, string Text)> GreedyAsync(string[]? badWords = null)
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 40, ignore_eos = true, temperature = 0,
            return_token_ids = true, bad_words = badWords,
        });
        Assert.Equal(200, status);
        var choice = body!["choices"]![0]!;
        return ([.. choice["token_ids"]!.AsArray().Select(id => id!.GetValue<int>())], choice["text"]!.GetValue<string>());
    }

    async Task<int[]> TokenizeAsync(string text)
    {
        var (_, body) = await _server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = text, add_special_tokens = false });
        return [.. body!["tokens"]!.AsArray().Select(id => id!.GetValue<int>())];
    }

    /// A token of the greedy answer that spells a whole word the way bad_words tokenizes it (the word alone, or after
    /// a space as one token of its own), and that word.
    async Task<(int Token, string Word)> WordTokenAsync(int[] ids)
    {
        foreach (var id in ids.Distinct())
        {
            var (_, text) = await _server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = new[] { id } });
            var word = text!["prompt"]!.GetValue<string>().Trim();
            if (word.Length == 0 || word.Contains('\uFFFD')) continue;
            var (alone, spaced) = (await TokenizeAsync(word), await TokenizeAsync(" " + word));
            if (alone.SequenceEqual([id]) || spaced.SequenceEqual([id]) && alone.Length == 1 && alone[0] != id) return (id, word);
        }
        throw new InvalidOperationException("the greedy answer spells no whole word in one token");
    }

    [Fact]
    public async Task ABannedWordIsNeverWritten()
    {
        var (ids, _) = await GreedyAsync();
        var (token, word) = await WordTokenAsync(ids);

        var (banned, _) = await GreedyAsync([word]);
        Assert.DoesNotContain(token, banned);
        Assert.NotEqual(ids, banned);

        var grpc = await GenerateResult.ReadAsync(_server.Grpc(), new Serving.Grpc.V1.GenerateRequest
        {
            Model = RunningServer.Model, Text = "Hello",
            Sampling = new() { MaxTokens = 40, IgnoreEos = true, Temperature = 0, BadWords = { word } },
        });
        Assert.Equal(banned, grpc.TokenIds());
    }

    [Fact]
    public async Task ABlankWordIsRefused()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", new
        {
            model = RunningServer.Model, prompt = "Hello", max_tokens = 2, bad_words = new[] { " " },
        });
        Assert.Equal(400, status);
        Assert.Equal("bad_words", body!["error"]!["param"]!.GetValue<string>());
    }
}
