using Serving.Engine.Sampling;

namespace Serving.Engine;

/// One caller's request to the engine: prompt token ids (already tokenized, already templated) and how to sample.
/// The servers build it; the engine validates it again at admission (a request never crashes the loop).
public sealed record GenerationRequest
{
    /// Caller-chosen id, unique among live requests (used in logs, traces and aborts).
    public required string RequestId { get; init; }

    /// The prompt, token ids in the model's vocabulary; BOS included when the tokenizer adds one.
    public required IReadOnlyList<int> PromptTokenIds { get; init; }

    public SamplingParams Sampling { get; init; } = SamplingParams.Greedy;

    /// An embedding request (the pooling runner's): the prompt is computed and its final hidden states pooled into one
    /// vector, which the request's one event carries (TokenEvent.Embedding); nothing is generated, and Sampling is
    /// replaced by the default when the engine admits it (one sequence, nothing compiled). Null: a generation request.
    public Pooling.PoolingParams? Pooling { get; init; }

    /// Tokens the request may add to its prompt in the KV cache: max_tokens, none for an embedding.
    public int MaxNewTokens => Pooling is null ? Sampling.MaxTokens : 0;

    /// Under SchedulingPolicy.Priority, lower is admitted first and preempted last (vLLM's priority); must be 0
    /// under first-come-first-served.
    public int Priority { get; init; }

    /// The LoRA adapter (ILlmEngine.LoraAdapters' name) the request runs with; null: the base model.
    public string? LoraAdapter { get; init; }

    /// vLLM's cache_salt: the request's prefix-cache blocks are shared only with requests of the same salt, so one
    /// tenant cannot learn another's prompts from cache hits. Null: unsalted.
    public string? CacheSalt { get; init; }
}
