using System.Text.Json;

namespace Serving.Engine.Speculative;

/// Which drafts a sequence brings: prompt lookup (vLLM's "ngram") or suffix decoding ("suffix").
public enum SpeculativeMethod { Ngram, Suffix }

/// Speculative decoding without a draft model, vLLM's `--speculative-config '{"method": "ngram" | "suffix", ...}'`:
/// each step a decoding sequence may bring up to NumSpeculativeTokens draft tokens, by prompt lookup (what followed
/// the last occurrence of its longest recent n-gram, PromptLookupMin..PromptLookupMax tokens, earlier in its prompt or
/// output: NgramProposer) or by suffix decoding (the most frequent continuations of its latest tokens in its own
/// tokens and earlier requests' outputs: SuffixProposer); the step checks them all in one forward and keeps those the
/// model itself would have sampled.
public sealed record SpeculativeConfig
{
    public SpeculativeMethod Method { get; init; } = SpeculativeMethod.Ngram;
    /// The most draft tokens a sequence brings to one step (vLLM's num_speculative_tokens).
    public required int NumSpeculativeTokens { get; init; }
    /// The shortest n-gram that may be matched (vLLM's prompt_lookup_min).
    public int PromptLookupMin { get; init; } = DefaultLookup;
    /// The longest n-gram tried first (vLLM's prompt_lookup_max).
    public int PromptLookupMax { get; init; } = DefaultLookup;
    /// No drafts while more sequences than this are running or waiting (vLLM's disable_by_batch_size): a large batch
    /// already keeps the GPU busy, and steps that check drafts run without CUDA graphs. Null: always speculate.
    public int? DisableByBatchSize { get; init; }
    /// Suffix decoding: the longest match plus draft, in tokens (vLLM's suffix_decoding_max_tree_depth).
    public int SuffixMaxTreeDepth { get; init; } = 24;
    /// Suffix decoding: how many earlier requests' outputs are kept, first in, first out; 0 keeps none and drafts from
    /// the sequence's own tokens only (vLLM's suffix_decoding_max_cached_requests).
    public int SuffixMaxCachedRequests { get; init; } = 10000;
    /// Suffix decoding: a draft is at most this many times as long as its match (vLLM's suffix_decoding_max_spec_factor).
    public double SuffixMaxSpecFactor { get; init; } = 1.0;
    /// Suffix decoding: a draft token needs at least this estimated probability (vLLM's suffix_decoding_min_token_prob).
    public double SuffixMinTokenProb { get; init; } = 0.1;

    /// vLLM's default when neither bound is given.
    const int DefaultLookup = 5;

    /// vLLM's JSON: {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": n, "prompt_lookup_min": m,
    /// "disable_by_batch_size": b} (one bound given stands for both), or {"method": "suffix", "num_speculative_tokens":
    /// k (default: the tree depth), "suffix_decoding_max_tree_depth", "suffix_decoding_max_cached_requests",
    /// "suffix_decoding_max_spec_factor", "suffix_decoding_min_token_prob", "disable_by_batch_size"}. ArgumentException
    /// naming the field for anything else: draft models, EAGLE and MTP need a second model this server does not load.
    public static SpeculativeConfig Parse(string json)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(json).RootElement;
        }
        catch (JsonException error)
        {
            throw new ArgumentException($"speculative-config is not JSON: {error.Message}");
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw new ArgumentException("speculative-config must be a JSON object");
        int? min = null, max = null, k = null, disableBy = null, depth = null, cached = null;
        double? factor = null, minProb = null;
        string? method = null, model = null;
        foreach (var field in root.EnumerateObject())
        {
            switch (field.Name)
            {
                case "method": method = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : null; break;
                case "model": model = field.Value.ValueKind == JsonValueKind.String ? field.Value.GetString() : null; break;
                case "num_speculative_tokens": k = Integer(field); break;
                case "prompt_lookup_min": min = Integer(field); break;
                case "prompt_lookup_max": max = Integer(field); break;
                case "disable_by_batch_size": disableBy = field.Value.ValueKind == JsonValueKind.Null ? null : Integer(field); break;
                case "suffix_decoding_max_tree_depth": depth = Integer(field); break;
                case "suffix_decoding_max_cached_requests": cached = Integer(field); break;
                case "suffix_decoding_max_spec_factor": factor = Number(field); break;
                case "suffix_decoding_min_token_prob": minProb = Number(field); break;
                default:
                    throw new ArgumentException(
                        $"speculative-config: '{field.Name}' is not supported (method \"ngram\" takes num_speculative_tokens, prompt_lookup_min, prompt_lookup_max, disable_by_batch_size; method \"suffix\" takes num_speculative_tokens and the suffix_decoding_* keys)");
            }
        }
        method ??= model is "ngram" or "[ngram]" ? "ngram" : null;   // vLLM's older spelling: "model": "[ngram]"
        if (method is not ("ngram" or "suffix"))
            throw new ArgumentException(
                $"speculative-config: method {(method is null ? "(missing)" : $"\"{method}\"")} is not supported; this server speculates without a draft model, method \"ngram\" or \"suffix\"");
        var suffix = method == "suffix";
        string? misplaced = suffix ? (min ?? max) is not null ? "prompt_lookup_min / prompt_lookup_max" : null
            : (depth ?? cached) is not null || (factor ?? minProb) is not null ? "the suffix_decoding_* keys" : null;
        if (misplaced is not null)
            throw new ArgumentException($"speculative-config: {misplaced} do not go with method \"{method}\"");
        var treeDepth = depth ?? 24;
        if (k is null && !suffix)
            throw new ArgumentException("speculative-config: num_speculative_tokens is required");
        var config = new SpeculativeConfig
        {
            Method = suffix ? SpeculativeMethod.Suffix : SpeculativeMethod.Ngram,
            NumSpeculativeTokens = k ?? Math.Min(treeDepth, 64),
            PromptLookupMin = min ?? max ?? DefaultLookup,
            PromptLookupMax = max ?? min ?? DefaultLookup,
            DisableByBatchSize = disableBy,
            SuffixMaxTreeDepth = treeDepth,
            SuffixMaxCachedRequests = cached ?? 10000,
            SuffixMaxSpecFactor = factor ?? 1.0,
            SuffixMinTokenProb = minProb ?? 0.1,
        };
        config.Validate();
        return config;
    }

    /// ArgumentException naming the field out of range.
    public void Validate()
    {
        if (NumSpeculativeTokens is < 1 or > 64)
            throw new ArgumentException($"speculative-config: num_speculative_tokens must be 1..64, got {NumSpeculativeTokens}");
        if (PromptLookupMin < 1)
            throw new ArgumentException($"speculative-config: prompt_lookup_min must be at least 1, got {PromptLookupMin}");
        if (PromptLookupMax < PromptLookupMin)
            throw new ArgumentException(
                $"speculative-config: prompt_lookup_max ({PromptLookupMax}) must be at least prompt_lookup_min ({PromptLookupMin})");
        if (DisableByBatchSize < 1)
            throw new ArgumentException($"speculative-config: disable_by_batch_size must be at least 1, got {DisableByBatchSize}");
        if (SuffixMaxTreeDepth < 3)
            throw new ArgumentException($"speculative-config: suffix_decoding_max_tree_depth must be at least 3, got {SuffixMaxTreeDepth}");
        if (SuffixMaxCachedRequests < 0)
            throw new ArgumentException($"speculative-config: suffix_decoding_max_cached_requests must not be negative, got {SuffixMaxCachedRequests}");
        if (!(SuffixMaxSpecFactor > 0) || double.IsInfinity(SuffixMaxSpecFactor))
            throw new ArgumentException($"speculative-config: suffix_decoding_max_spec_factor must be positive, got {SuffixMaxSpecFactor}");
        if (!(SuffixMinTokenProb is >= 0 and <= 1))
            throw new ArgumentException($"speculative-config: suffix_decoding_min_token_prob must be in 0..1, got {SuffixMinTokenProb}");
    }

    public override string ToString() =>
        (Method == SpeculativeMethod.Suffix
            ? $"suffix, {NumSpeculativeTokens} speculative tokens, tree depth {SuffixMaxTreeDepth}, {SuffixMaxCachedRequests} cached outputs, " +
              $"spec factor {SuffixMaxSpecFactor}, min token probability {SuffixMinTokenProb}"
            : $"ngram, {NumSpeculativeTokens} speculative tokens, n-grams of {PromptLookupMin}..{PromptLookupMax}") +
        (DisableByBatchSize is { } most ? $", off above {most} running sequences" : "");

    static double Number(JsonProperty field) =>
        field.Value.ValueKind == JsonValueKind.Number ? field.Value.GetDouble() : throw new ArgumentException($"speculative-config: {field.Name} must be a number");

    static int Integer(JsonProperty field) =>
        field.Value.ValueKind == JsonValueKind.Number && field.Value.TryGetInt32(out var value)
            ? value : throw new ArgumentException($"speculative-config: {field.Name} must be an integer");
}
