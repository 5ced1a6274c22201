namespace Serving.LoadGen.Soak;

/// The API a soak request goes through.
internal enum SoakApi { Completions, Chat, GrpcText, GrpcChat }

/// One request of a soak: which API, the prompt text, the budget, n sequences, stop strings, and whether the
/// client walks away mid-stream (after AbandonAfterChunks chunks; null reads the stream to its end).
internal sealed record SoakRequest(SoakApi Api, string Prompt, int MaxTokens, int N, IReadOnlyList<string> Stop, int? AbandonAfterChunks)
{
    public bool IsGrpc => Api is SoakApi.GrpcText or SoakApi.GrpcChat;
    public bool IsChat => Api is SoakApi.Chat or SoakApi.GrpcChat;
}

/// How a soak request ended. ServerError is a 5xx (or gRPC INTERNAL / UNKNOWN / DATA_LOSS): the one kind a
/// healthy server never gives. Refused is a 4xx the client can act on (429 while the queue is full).
internal enum SoakResult { Completed, Abandoned, Refused, ServerError, TransportError }

internal sealed record SoakOutcome(SoakRequest Request, SoakResult Result, string? Detail = null);

/// Draws the soak's mixed traffic from a seed: every API (both gRPC inputs only when grpc), short to long prompts (up to about half the context),
/// short to long completions, n of 1, 2 or 4, stop strings on a third of the requests, and about
/// AbandonFraction of the requests abandoned after one to three chunks.
internal sealed class SoakMix(int maxModelLen, double abandonFraction, bool grpc, int seed)
{
    static readonly string[] Words =
        ["the", "server", "batched", "requests", "of", "tokens", "and", "a", "model", "that", "reads", "every", "cache",
         "block", "once", "while", "queue", "waits", "for", "its", "turn", "in", "long", "short", "prompts", "stream"];
    static readonly string[] StopStrings = ["e", "the", "\n", "ing", "x", "ab"];

    readonly Random _random = new(seed);
    readonly Lock _lock = new();

    public SoakRequest Next()
    {
        lock (_lock)
        {
            var api = (SoakApi)_random.Next(grpc ? 4 : 2);
            // a word and its space are a few tokens: up to maxModelLen / 8 words and maxModelLen / 4 new tokens fit
            var words = _random.NextDouble() < 0.5 ? _random.Next(1, 12) : _random.Next(12, Math.Max(13, maxModelLen / 8));
            var prompt = string.Join(' ', Enumerable.Range(0, words).Select(_ => Words[_random.Next(Words.Length)]));
            var maxTokens = _random.NextDouble() < 0.5 ? _random.Next(1, 16) : _random.Next(16, Math.Max(17, maxModelLen / 4));
            var n = new[] { 1, 1, 1, 2, 4 }[_random.Next(5)];
            IReadOnlyList<string> stop = _random.NextDouble() < 1 / 3.0 ? [StopStrings[_random.Next(StopStrings.Length)]] : [];
            int? abandon = _random.NextDouble() < abandonFraction ? _random.Next(1, 4) : null;
            return new SoakRequest(api, prompt, maxTokens, n, stop, abandon);
        }
    }
}
