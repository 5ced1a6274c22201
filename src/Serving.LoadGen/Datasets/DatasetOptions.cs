namespace Serving.LoadGen.Datasets;

/// How to make a trace's prompts (vLLM benchmark_serving's dataset flags).
internal sealed record DatasetOptions
{
    /// random, sharegpt or prefix-repetition.
    public string Name { get; init; } = "random";
    public int NumPrompts { get; init; } = 100;
    public int Seed { get; init; }
    /// Send prompts as token ids (default) or as the text those ids decode to (needs a tokenizer).
    public PromptFormat Format { get; init; } = PromptFormat.Ids;

    public int RandomInputLen { get; init; } = 1024;
    public int RandomOutputLen { get; init; } = 128;
    /// Lengths are drawn uniformly from [len * (1 - ratio), len * (1 + ratio)].
    public double RandomRangeRatio { get; init; }

    public string? DatasetPath { get; init; }
    /// Overrides the ShareGPT completion's length as the requested output length.
    public int? ShareGptOutputLen { get; init; }

    public int PrefixLen { get; init; } = 256;
    public int SuffixLen { get; init; } = 256;
    public int NumPrefixes { get; init; } = 10;
}

internal enum PromptFormat { Ids, Text }
