using Microsoft.Extensions.Logging;

namespace Serving.Engine;

/// The engine's structured log messages (source-generated). No prompt or output text is ever logged here.
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Loading model {Model} on {Device} ({Dtype})")]
    public static partial void LoadingModel(ILogger logger, string model, string device, string dtype);

    [LoggerMessage(2, LogLevel.Information,
        "Model loaded: {ModelType} with {Layers} layers, {Heads} query heads, {KVHeads} KV heads, head dim {HeadDim}, {Dtype} on {Device}")]
    public static partial void ModelLoaded(ILogger logger, string modelType, int layers, int heads, int kvHeads,
        int headDim, string dtype, string device);

    [LoggerMessage(3, LogLevel.Information,
        "KV cache: {BytesPerToken} bytes per token, {NumBlocks} blocks of {BlockSize} tokens = {CapacityTokens} tokens ({MaxSequences} sequences of {MaxModelLen} tokens)")]
    public static partial void KVCachePlanned(ILogger logger, long bytesPerToken, int numBlocks, int blockSize,
        long capacityTokens, long maxSequences, int maxModelLen);

    [LoggerMessage(4, LogLevel.Error, "Loading model {Model} failed")]
    public static partial void LoadFailed(ILogger logger, string model, Exception error);

    [LoggerMessage(5, LogLevel.Critical, "The engine loop failed; every live request was failed")]
    public static partial void LoopFailed(ILogger logger, Exception error);

    [LoggerMessage(6, LogLevel.Error, "A step over {NumSequences} sequences failed; their requests were failed")]
    public static partial void StepFailed(ILogger logger, int numSequences, Exception error);

    [LoggerMessage(7, LogLevel.Warning, "Sampling {NumSequences} sequences failed as a batch; sampling row by row")]
    public static partial void SamplingFailed(ILogger logger, int numSequences, Exception error);

    [LoggerMessage(9, LogLevel.Information,
        "Default sampling parameters come from the model's generation_config.json (--generation-config vllm turns them off): {Defaults}")]
    public static partial void SamplingDefaults(ILogger logger, string defaults);

    [LoggerMessage(8, LogLevel.Information, "Loading weights: {Loaded}/{Total} tensors, {LoadedBytes} bytes")]
    public static partial void WeightProgress(ILogger logger, int loaded, int total, long loadedBytes);

    [LoggerMessage(9, LogLevel.Information,
        "KV cache scales calculated from the first prompts' K and V (layer: k_scale/v_scale): {Scales}")]
    public static partial void KVScalesCalculated(ILogger logger, string scales);

    [LoggerMessage(10, LogLevel.Information,
        "Captured {Count} CUDA graphs of decode steps (batch sizes {BatchSizes}) in {Milliseconds} ms; they hold {MiB} MiB of GPU memory")]
    public static partial void GraphsCaptured(ILogger logger, int count, string batchSizes, long milliseconds, long miB);

    [LoggerMessage(11, LogLevel.Information,
        "Tensor parallel over {Size} ranks ({Devices}): each holds {Heads} query heads, {KVHeads} KV heads ({Replicas} ranks hold each), ffn {Ffn} and {VocabRows} vocabulary rows")]
    public static partial void TensorParallel(ILogger logger, int size, string devices, int heads, int kvHeads, int replicas, int ffn, int vocabRows);

    [LoggerMessage(12, LogLevel.Information,
        "Timed the decode step's matrix products at {Count} (shape, batch size) pairs in {Milliseconds} ms before the capture: {Chosen} run a cuBLASLt algorithm faster than the default (cuBLAS's own for 16-bit weights, cuBLASLt's first choice for FP8 ones)")]
    public static partial void MatmulsTuned(ILogger logger, int count, long milliseconds, int chosen);

    [LoggerMessage(13, LogLevel.Information, "LoRA adapter {Name} loaded from {Path}: rank {Rank}, {Projections} projections")]
    public static partial void LoraAdapterLoaded(ILogger logger, string name, string path, int rank, int projections);

    [LoggerMessage(14, LogLevel.Information, "Pooling runner: embeddings by {Pooler}; no LM head loaded, no decode graphs")]
    public static partial void PoolingRunner(ILogger logger, string pooler);

    [LoggerMessage(15, LogLevel.Information, "Quantized checkpoint ({Quantization}): weights dequantized to {Dtype} as they loaded; they take the memory of unquantized ones")]
    public static partial void WeightsDequantized(ILogger logger, string quantization, string dtype);

    [LoggerMessage(21, LogLevel.Warning, "FP8 checkpoint: {Left}")]
    public static partial void CheckpointFp8Left(ILogger logger, string left);

    [LoggerMessage(19, LogLevel.Information,
        "{Source}: {Count} projections stored as FP8 (e4m3, {Scales}; inputs quantized per step, but a step's few rows; the other weights in {Dtype}), weights {WeightMiB} MiB ({UnquantizedMiB} MiB in {Dtype}), {Milliseconds} ms after the load")]
    public static partial void WeightsQuantizedFp8(ILogger logger, string source, int count, string scales, string dtype, long weightMiB, long unquantizedMiB, long milliseconds);

    [LoggerMessage(17, LogLevel.Warning,
        "--max-model-len auto: the KV cache holds {CapacityTokens} tokens, so the context is {MaxModelLen} tokens (the model serves {ModelLen})")]
    public static partial void MaxModelLenFitted(ILogger logger, long capacityTokens, int maxModelLen, int modelLen);

    [LoggerMessage(18, LogLevel.Warning,
        "The KV cache holds {CapacityTokens} tokens, fewer than one sequence of the context ({MaxModelLen} tokens): longer requests are refused. Lower --max-model-len (or set it to auto), or give the cache more memory (--gpu-memory-utilization, --kv-cache-memory-bytes)")]
    public static partial void KVCacheShorterThanContext(ILogger logger, long capacityTokens, int maxModelLen);

    [LoggerMessage(20, LogLevel.Information,
        "The chat template reads a message's content as {Format} (--chat-template-content-format {Flag})")]
    public static partial void ChatContentFormat(ILogger logger, string format, string flag);

    [LoggerMessage(16, LogLevel.Information, "The model attends both ways (is_causal: false): each prompt is computed whole in one step (--max-num-batched-tokens {MaxNumBatchedTokens}), without prefix caching")]
    public static partial void Bidirectional(ILogger logger, int maxNumBatchedTokens);
}
