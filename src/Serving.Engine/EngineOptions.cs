namespace Serving.Engine;

/// Everything the engine needs to start, with vLLM's defaults. The servers map their flags onto it.
public sealed record EngineOptions
{
    /// Folder of a Hugging Face checkpoint, or a preset name (ModelPresets) for random weights of a real shape.
    public required string Model { get; init; }
    /// Folder with tokenizer.json / tokenizer.model and tokenizer_config.json; null means the Model folder.
    public string? Tokenizer { get; init; }
    /// config.json fields replacing the model's (vLLM's --hf-overrides), e.g. a longer max_position_embeddings.
    public Config.HfOverrides? HfOverrides { get; init; }
    /// A chat template (Jinja source) to render chats with instead of the tokenizer's (vLLM's --chat-template).
    public string? ChatTemplate { get; init; }
    /// How chat templates are given a message's content (vLLM's --chat-template-content-format): null (auto) each
    /// template as it reads it, from its syntax; else this form for every template (Templates/ChatContentFormat.cs).
    public Templates.ChatContentFormat? ChatTemplateContentFormat { get; init; }
    /// Chat template variables every chat gets unless its request sets them (vLLM's --default-chat-template-kwargs),
    /// e.g. enable_thinking false.
    public System.Text.Json.Nodes.JsonObject? DefaultChatTemplateKwargs { get; init; }
    /// Sampling defaults that replace GenerationConfig's (vLLM's --override-generation-config).
    public Config.SamplingDefaults? OverrideGenerationConfig { get; init; }
    /// vLLM's --quantization: null reads the checkpoint's quantization_config; a value must name that method
    /// (WeightQuantization.FlagValues).
    public string? Quantization { get; init; }
    /// auto (checkpoint dtype; bfloat16 on CUDA), float32, bfloat16, float16.
    public string Dtype { get; init; } = "auto";
    /// How the KV pool stores K and V (vLLM's --kv-cache-dtype): auto (the model's dtype), float32, bfloat16, float16.
    public string KVCacheDtype { get; init; } = "auto";
    /// FP8 KV cache: compute each layer's K and V scale from the first prompts' K and V (vLLM's
    /// --calculate-kv-scales) instead of 1.0 or the checkpoint's.
    public bool CalculateKVScales { get; init; }
    /// Never replay CUDA graphs (vLLM's --enforce-eager): every decode step launches its kernels one by one.
    public bool EnforceEager { get; init; }
    /// cpu or cuda (cuda:N).
    public string Device { get; init; } = "cpu";
    /// Ranks the model is split over by tensor parallelism (vLLM's --tensor-parallel-size): on CUDA one GPU each, from
    /// Device's index on, joined by NCCL; on CPU threads joined in-process. 1 runs the whole model on Device.
    public int TensorParallelSize { get; init; } = 1;
    /// 0 means the model's max_position_embeddings; AutoMaxModelLen (vLLM's `--max-model-len auto`, or -1) the longest
    /// one sequence the KV cache holds whole, at most the model's.
    public int MaxModelLen { get; init; }
    public const int AutoMaxModelLen = -1;
    public int BlockSize { get; init; } = 16;
    public int MaxNumSeqs { get; init; } = 256;
    public int MaxNumBatchedTokens { get; init; } = 8192;
    /// The most prompt tokens one sequence computes in a step (vLLM's --long-prefill-token-threshold); 0: no cap.
    public int LongPrefillTokenThreshold { get; init; }
    /// PEFT LoRA adapters served beside the base model (vLLM's --lora-modules), each under its name.
    public IReadOnlyList<Model.Lora.LoraAdapterSource> LoraModules { get; init; } = [];
    /// The largest adapter rank accepted (vLLM's --max-lora-rank).
    public int MaxLoraRank { get; init; } = 16;
    /// The most LoRA adapters loaded at once, at start and while serving (vLLM's --max-loras; every loaded adapter stays
    /// on the device here). Null: as many as LoraModules (none: LoRA off). On a GPU the KV cache leaves room for the ones
    /// not loaded at start, at MaxLoraRank on every projection.
    public int? MaxLoras { get; init; }

    /// MaxLoras resolved.
    public int LoraCapacity => MaxLoras ?? LoraModules.Count;
    /// Speculative decoding (vLLM's --speculative-config; "ngram", prompt lookup): null decodes one token per sequence
    /// and step.
    public Speculative.SpeculativeConfig? SpeculativeConfig { get; init; }
    /// What the engine serves (vLLM's --runner): generation, or embeddings (pooling); null (auto) decides from the
    /// architecture's name, as vLLM does (a base model such as Qwen3Model pools).
    public Pooling.RunnerType? Runner { get; init; }
    /// The pooling runner's defaults to replace (vLLM's --pooler-config): pooling type, normalize, dimensions.
    public Pooling.PoolerConfigOverrides? PoolerConfig { get; init; }
    /// vLLM's --scheduling-policy: first come first served, or by each request's priority.
    public SchedulingPolicy SchedulingPolicy { get; init; } = SchedulingPolicy.Fcfs;
    /// Fraction of GPU memory the engine may use (weights + KV + activations) on CUDA.
    public double GpuMemoryUtilization { get; init; } = 0.9;
    /// KV pool size in bytes (vLLM's --kv-cache-memory-bytes; per GPU under tensor parallelism). Null: on CUDA what
    /// GpuMemoryUtilization leaves, on CPU CpuKVCacheBytes. Given on CUDA, it replaces GpuMemoryUtilization's sizing.
    public long? KVCacheMemoryBytes { get; init; }
    /// The CPU pool's size when KVCacheMemoryBytes is not given.
    public const long CpuKVCacheBytes = 256L << 20;
    /// Forces the number of KV blocks (overrides both sizings above).
    public int? NumGpuBlocksOverride { get; init; }
    public bool EnablePrefixCaching { get; init; } = true;
    /// Waiting sequences (a request with n counts n) beyond this are refused with QueueFullException; a
    /// request with more sequences than this is invalid, since it could never be queued.
    public int MaxNumQueuedRequests { get; init; } = 1024;
    /// Seed of the engine's generator for requests without a seed.
    public long Seed { get; init; }
    /// Where the default sampling parameters come from (vLLM's --generation-config): "auto" the model's
    /// generation_config.json, "vllm" none, or a folder holding a generation_config.json.
    public string GenerationConfig { get; init; } = "auto";
}
