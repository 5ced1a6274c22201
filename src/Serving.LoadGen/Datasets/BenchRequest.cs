namespace Serving.LoadGen.Datasets;

/// A prompt as the server receives it: token ids (sent as a token-id prompt) or text. Exactly one is set.
internal sealed record BenchPrompt(IReadOnlyList<int>? TokenIds, string? Text)
{
    public static BenchPrompt Ids(IReadOnlyList<int> ids) => new(ids, null);
    public static BenchPrompt OfText(string text) => new(null, text);
}

/// One request of a benchmark trace: what to send, how long the prompt is in tokens, and how many tokens to
/// ask for (max_tokens). Index is the request's position in the trace, the key that pairs runs in `compare`.
internal sealed record BenchRequest(int Index, BenchPrompt Prompt, int PromptLength, int OutputLength)
{
    /// The model the request names instead of the run's: one of --lora-modules' adapters.
    public string? Model { get; init; }
}
