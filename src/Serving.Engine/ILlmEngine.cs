using System.Text.Json.Nodes;

namespace Serving.Engine;

/// What the servers (HTTP, gRPC) see of the engine. They know nothing of tensors; the engine nothing of HTTP.
public interface ILlmEngine : IAsyncDisposable
{
    EngineState State { get; }

    /// Completes when the model is loaded and the loop runs; faults if loading failed.
    Task WaitUntilReadyAsync(CancellationToken cancellationToken);

    /// Completes when the engine loop has ended: stopped (drain, disposal), faulted, or never started because
    /// loading failed. With WaitUntilReadyAsync it marks every change of State but Draining, which the caller
    /// starts itself, so servers can report state changes as they happen instead of polling State.
    Task Completion { get; }

    /// Valid once ready.
    ModelInfo Info { get; }

    /// Tokenizer and chat template of the loaded model. Thread-safe; valid once ready.
    IPromptProcessor Prompts { get; }

    /// Queues the request and streams its tokens. Throws InvalidRequestException, QueueFullException or
    /// EngineUnavailableException before the first event; RequestFailedException if serving it fails later.
    /// Cancelling the token aborts the request and frees its KV blocks within one engine step.
    IAsyncEnumerable<TokenEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken);

    /// A consistent snapshot of the engine's counters and gauges.
    EngineStats GetStats();

    /// The LoRA adapters requests may name now (GenerationRequest.LoraAdapter), in load order. Thread-safe.
    IReadOnlyList<Model.Lora.LoraAdapterSource> LoraAdapters { get; }

    /// Loads a PEFT adapter and serves it from the engine's next step (vLLM's /v1/load_lora_adapter).
    /// ModelLoadException when the folder cannot be applied; InvalidRequestException when the name is taken.
    Task LoadLoraAdapterAsync(Model.Lora.LoraAdapterSource source, CancellationToken cancellationToken);

    /// Stops serving an adapter (vLLM's /v1/unload_lora_adapter). InvalidRequestException when none has the name or
    /// a live request uses it.
    Task UnloadLoraAdapterAsync(string name, CancellationToken cancellationToken);

    /// Forgets every cached prefix (vLLM's /reset_prefix_cache), so later prompts compute their KV again, as a benchmark
    /// run wants between rounds. False, changing nothing, while a request holds KV blocks.
    Task<bool> ResetPrefixCacheAsync(CancellationToken cancellationToken);

    /// Stops admitting new requests (State becomes Draining), lets running ones finish up to the timeout,
    /// then aborts the rest (their streams end with FinishReason.Abort) and stops the loop.
    Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken);
}

/// What every engine answers through GenerateAsync, in the shape its callers want.
public static class LlmEngineExtensions
{
    /// Computes an embedding request (GenerationRequest.Pooling set; the pooling runner) and returns its vector.
    /// Throws as GenerateAsync does; EngineUnavailableException when the engine aborts it (drain, shutdown). Cancelling
    /// the token aborts the request and frees its KV blocks within one engine step.
    public static async Task<EmbeddingResult> EmbedAsync(this ILlmEngine engine, GenerationRequest request, CancellationToken cancellationToken)
    {
        if (request.Pooling is null) throw new ArgumentException("an embedding request sets Pooling", nameof(request));
        EmbeddingResult? result = null;
        // read to the stream's end (the vector's event is its last), so the request is not aborted as left unread
        await foreach (var tokenEvent in engine.GenerateAsync(request, cancellationToken))
            if (tokenEvent.Embedding is { } vector)
                result = new EmbeddingResult(vector, tokenEvent.Usage?.PromptTokens ?? request.PromptTokenIds.Count,
                    tokenEvent.Usage?.CachedPromptTokens ?? 0, tokenEvent.Timings);
        return result ?? throw new EngineUnavailableException($"embedding request '{request.RequestId}' was aborted: the engine is stopping");
    }
}

public enum EngineState { Loading, Ready, Draining, Stopped, Faulted }

/// Tokenizer and chat template of the loaded model, as the servers use them.
public interface IPromptProcessor
{
    int VocabSize { get; }

    /// The longest text Encode takes: the context times the longest token's length in characters. A longer
    /// text needs more tokens than the context holds.
    long MaxTextLength { get; }

    /// Throws InvalidRequestException (param "prompt") when a text of this many characters cannot fit; Encode
    /// checks it too. Lets a server refuse a text from its length alone, before decoding it.
    void CheckTextLength(long length);

    /// Tokenizes like the reference tokenizer; addSpecialTokens adds BOS (and what the post-processor adds).
    /// Throws InvalidRequestException (param "prompt") for a text longer than MaxTextLength.
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    /// Encode without the MaxTextLength refusal: for a caller that keeps only part of the tokens (vLLM's
    /// truncate_prompt_tokens keeps the last ones), so a text of any length is taken.
    IReadOnlyList<int> EncodeAnyLength(string text, bool addSpecialTokens);

    string Decode(IReadOnlyList<int> tokenIds, bool skipSpecialTokens = false);

    /// The text of one token, for log-probability listings (bytes that are not valid UTF-8 become "bytes:\\xNN").
    string TokenText(int tokenId);

    /// Renders the model's chat template. messages is a JSON array of {role, content, ...} objects, content a
    /// string, a list of {type: "text", text} parts or null, given to the template in the form it reads
    /// (Templates.ChatContentFormat; --chat-template-content-format). chatTemplate, when given, replaces the model's template
    /// (a request's own; the servers allow it only when told to trust it). Throws InvalidRequestException when
    /// the template rejects the conversation (raise_exception), does not parse, or the model has none.
    /// continueFinalMessage: the text ends inside the final message, for the model to continue it (transformers'
    /// continue_final_message; ChatTemplate.OpenFinalMessage).
    string ApplyChatTemplate(JsonArray messages, bool addGenerationPrompt, JsonObject? extraContext = null,
        string? chatTemplate = null, bool continueFinalMessage = false);
}

/// An embedding request's answer: the pooled vector, the prompt's tokens (of which CachedPromptTokens came from the
/// prefix cache) and its timings.
public sealed record EmbeddingResult(float[] Embedding, int PromptTokens, int CachedPromptTokens, RequestTimings? Timings);

/// Facts about the served model and its KV cache, for /v1/models, GetModelInfo and the load generator.
public sealed record ModelInfo
{
    public required string Architecture { get; init; }
    public required string ModelType { get; init; }
    public required int NumLayers { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    /// Longest prompt + completion accepted (--max-model-len, at most max_position_embeddings).
    public required int MaxModelLen { get; init; }
    public required string Dtype { get; init; }
    /// How the decoder's projections are stored when not in Dtype: "fp8" (E4M3) under --quantization fp8 on a 16-bit
    /// checkpoint (a scale per tensor), or for an FP8 checkpoint's projections scaled per tensor, per channel or per
    /// 128 x 128 block (its own bytes and scales), on a GPU that runs FP8 products; null otherwise (other quantized
    /// checkpoints are dequantized to Dtype as they load).
    public string? WeightStorage { get; init; }
    /// How the KV pool stores K and V (--kv-cache-dtype resolved: the model's dtype unless set).
    public required string KVCacheDtype { get; init; }
    public required string Device { get; init; }
    /// GPUs (or CPU ranks) the model is split over; the KV figures below are per GPU.
    public int TensorParallelSize { get; init; } = 1;
    public required int BlockSize { get; init; }
    public required int NumKVBlocks { get; init; }
    /// 2 x layers x KV heads x head dim x KV cache dtype size, on one GPU: under tensor parallelism a GPU holds
    /// max(1, KV heads / size) of the KV heads.
    public required long KVBytesPerToken { get; init; }
    /// Defaults for the sampling fields a request leaves out (--generation-config); None when there are none.
    public Config.SamplingDefaults SamplingDefaults { get; init; } = Config.SamplingDefaults.None;
    /// What the engine serves (--runner): generation, or embeddings (pooling).
    public Pooling.RunnerType Runner { get; init; } = Pooling.RunnerType.Generate;
    /// The pooling runner's defaults (--pooler-config, the checkpoint's sentence-transformers modules); null for generate.
    public Pooling.PoolerConfig? Pooler { get; init; }
    /// The pooled vector's length (PoolerConfig.EmbeddingSize: the checkpoint's last Dense module's out_features, else
    /// HiddenSize).
    public int EmbeddingSize { get => _embeddingSize ?? HiddenSize; init => _embeddingSize = value; }
    readonly int? _embeddingSize;
    /// Matryoshka embeddings (config.json is_matryoshka / matryoshka_dimensions): whether a request may ask for fewer
    /// dimensions than EmbeddingSize, and which (empty: any).
    public bool AllowsMatryoshkaDimensions { get; init; }
    public IReadOnlyList<int> MatryoshkaDimensions { get; init; } = [];
    /// A sequence classifier's labels in id order (its pooled vector is one logit per label); empty for other models.
    public IReadOnlyList<string> Labels { get; init; } = [];
    /// A classifier's problem_type (config.json), which decides /classify's activation; null when unset.
    public string? ProblemType { get; init; }
    /// A cross-encoder's pairs are scored as one joined text (ModelConfig.JoinsScorePairs), by the raw logit when
    /// ScoreActivationIsIdentity, else its sigmoid.
    public bool JoinsScorePairs { get; init; }
    public bool ScoreActivationIsIdentity { get; init; }

    /// Refuses (InvalidRequestException naming param) an embedding's prompt of this many tokens that the engine could
    /// never take: longer than the context, or than the whole KV cache. A server checks each input with it to name the
    /// input's own field (the engine checks again, naming "input").
    public void CheckPooledPrompt(int tokens, string param)
    {
        ContextLength.CheckPooled(tokens, MaxModelLen, param);
        var blocks = (tokens + BlockSize - 1) / BlockSize;
        if (blocks > NumKVBlocks)
            throw new InvalidRequestException($"the input ({tokens} tokens) needs {blocks} KV blocks of {BlockSize} tokens, but the whole " +
                $"KV cache has {NumKVBlocks} blocks ({KVCapacityTokens} tokens)", param);
    }

    /// Refuses (InvalidRequestException naming "dimensions") an embedding size the model cannot give well; vLLM's rules
    /// and words.
    public void CheckDimensions(int dimensions) => CheckDimensions(dimensions, AllowsMatryoshkaDimensions, MatryoshkaDimensions, EmbeddingSize);

    /// The rule of CheckDimensions for a model of this Matryoshka setting and embedding size (before it is loaded).
    public static void CheckDimensions(int dimensions, bool isMatryoshka, IReadOnlyList<int> matryoshkaDimensions, int embeddingSize)
    {
        if (dimensions < 1)
            throw new InvalidRequestException("Dimensions must be greater than 0", "dimensions");
        if (!isMatryoshka)
            throw new InvalidRequestException("This model does not support matryoshka representation, changing output dimensions will lead to poor results.", "dimensions");
        if (matryoshkaDimensions.Count > 0 && !matryoshkaDimensions.Contains(dimensions))
            throw new InvalidRequestException($"This model only supports [{string.Join(", ", matryoshkaDimensions)}] matryoshka dimensions, " +
                "use other output dimensions will lead to poor results.", "dimensions");
        if (dimensions > embeddingSize)
            throw new InvalidRequestException($"dimensions {dimensions} exceeds the model's embedding size, {embeddingSize}", "dimensions");
    }
    public long KVCapacityTokens => (long)NumKVBlocks * BlockSize;
}

/// Counters (monotonic since start) and gauges (now) the servers export as metrics.
public sealed record EngineStats
{
    public int RunningRequests { get; init; }
    public int WaitingRequests { get; init; }
    public int NumKVBlocks { get; init; }
    public int FreeKVBlocks { get; init; }
    /// Blocks referenced by live sequences, over all blocks (cached-but-free blocks count as free).
    public double KVUsage { get; init; }
    public long PrefixCacheQueries { get; init; }
    public long PrefixCacheHits { get; init; }
    public long Preemptions { get; init; }
    public long PromptTokens { get; init; }
    public long GenerationTokens { get; init; }
    public long Steps { get; init; }
    public TimeSpan LastStepDuration { get; init; }
    /// Time of all steps so far in each phase: scheduling and postprocessing (detokenizing, stop strings, events) are
    /// host work the device waits for; execution is the forward, sampling and the read of the sampled tokens.
    public TimeSpan SchedulingTime { get; init; }
    public TimeSpan ExecutionTime { get; init; }
    public TimeSpan PostprocessingTime { get; init; }
    /// Speculative decoding's drafts checked and kept (all zero without --speculative-config).
    public Speculative.SpeculationStats Speculation { get; init; } = Speculative.SpeculationStats.None;
}
