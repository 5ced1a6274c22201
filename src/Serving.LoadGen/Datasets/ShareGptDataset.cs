using System.Text.Json;

namespace Serving.LoadGen.Datasets;

/// A ShareGPT-format JSON file: a list of {"conversations": [{"from", "value"}, ...]}. As vLLM's benchmark does,
/// each conversation's first turn is the prompt and its second the reference completion whose token count is
/// the requested output length; conversations are shuffled with the seed and pairs that are too short
/// (prompt or completion under 4 tokens) or too long (prompt over 1024, both over 2048) are skipped.
internal static class ShareGptDataset
{
    const int MinLength = 4;
    const int MaxPromptLength = 1024;
    const int MaxTotalLength = 2048;

    public static IReadOnlyList<BenchRequest> Create(DatasetOptions options, TokenSpace tokens)
    {
        var path = options.DatasetPath ?? throw new ArgumentException("--dataset-name sharegpt needs --dataset-path FILE");
        var pairs = ReadPairs(path);
        new Random(options.Seed).Shuffle(pairs);
        var requests = new List<BenchRequest>();
        foreach (var (prompt, completion) in pairs)
        {
            if (requests.Count == options.NumPrompts) break;
            var promptIds = tokens.Tokenizer.Encode(prompt);
            var outputLength = options.ShareGptOutputLen ?? tokens.Tokenizer.Encode(completion, addSpecialTokens: false).Count;
            if (!Fits(promptIds.Count, outputLength, options.ShareGptOutputLen is not null)) continue;
            var sent = options.Format == PromptFormat.Ids ? BenchPrompt.Ids(promptIds) : BenchPrompt.OfText(prompt);
            requests.Add(new BenchRequest(requests.Count, sent, promptIds.Count, outputLength));
        }
        if (requests.Count < options.NumPrompts)
            throw new ArgumentException($"{path} has only {requests.Count} usable conversations, {options.NumPrompts} requested");
        return requests;
    }

    static bool Fits(int promptLength, int outputLength, bool outputFixed) =>
        promptLength >= MinLength && (outputFixed || outputLength >= MinLength)
        && promptLength <= MaxPromptLength && promptLength + outputLength <= MaxTotalLength;

    /// (first turn, second turn) of every conversation that has at least two turns.
    public static (string Prompt, string Completion)[] ReadPairs(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        if (document.RootElement.ValueKind != JsonValueKind.Array)
            throw new ArgumentException($"{path}: a ShareGPT file is a JSON list of conversations");
        var pairs = new List<(string, string)>();
        foreach (var entry in document.RootElement.EnumerateArray())
        {
            if (!entry.TryGetProperty("conversations", out var turns) || turns.ValueKind != JsonValueKind.Array
                || turns.GetArrayLength() < 2) continue;
            var first = turns[0].TryGetProperty("value", out var p) ? p.GetString() : null;
            var second = turns[1].TryGetProperty("value", out var c) ? c.GetString() : null;
            if (first is not null && second is not null) pairs.Add((first, second));
        }
        return [.. pairs];
    }
}
