using System.Text.Json.Nodes;
using Serving.Engine.Config;

namespace Serving.Engine.Model;

/// Named model shapes for random-weight models of real sizes, built on the device without files:
/// `--model llama3-8b` in the server and the benchmark. The llama3-8b trio differs only in KV heads: GQA-8
/// (the real model), its MHA twin and an MQA variant, so their step times isolate the cost of the KV cache.
/// llama3-70b (141 GB in bf16) is for tensor parallelism: more than one H200 holds beside a KV cache.
/// gemma3-4b (Gemma 3 4B's text decoder: head dim 256, five sliding layers to each full one, the gemma block) times
/// a family other than Llama on either backend; gemma2-9b (Gemma 2 9B: head dim 256, every other layer sliding, soft-capped
/// attention and logits) the kernels' soft-capping; qwen3-30b-a3b (Qwen3-30B-A3B: 128 experts of 768, 8 a token) a
/// mixture of experts, its experts in 16 bits or FP8; gpt-oss-20b (32 experts of 2880, 4 a token, biased, attention
/// sinks, every other layer sliding over 128) OpenAI's, its experts in 16 bits (the released MXFP4 dequantized) or FP8.
/// The tiny ones keep CPU smoke runs fast.
public static class ModelPresets
{
    public static IReadOnlyList<string> Names { get; } = ["llama3-8b", "llama3-8b-mha", "llama3-8b-mqa", "llama3-70b", "gemma3-4b", "gemma2-9b", "qwen3-30b-a3b", "gpt-oss-20b", "tiny-gqa", "tiny-mha"];

    public static bool IsPreset(string name) => Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// The config.json a checkpoint of this shape would have.
    public static ModelConfig Get(string name) => name.ToLowerInvariant() switch
    {
        "llama3-8b" => Llama3_8B(numKVHeads: 8),
        "llama3-8b-mha" => Llama3_8B(numKVHeads: 32),
        "llama3-8b-mqa" => Llama3_8B(numKVHeads: 1),
        "llama3-70b" => Llama3_70B(),
        "gemma3-4b" => Gemma3_4B(),
        "gemma2-9b" => Gemma2_9B(),
        "qwen3-30b-a3b" => Qwen3_30B_A3B(),
        "gpt-oss-20b" => GptOss20B(),
        "tiny-gqa" => Tiny(numHeads: 8, numKVHeads: 2, headDim: 32),
        "tiny-mha" => Tiny(numHeads: 4, numKVHeads: 4, headDim: 64),
        _ => throw new ArgumentException($"unknown model preset '{name}' (known: {string.Join(", ", Names)})", nameof(name)),
    };

    // Meta-Llama-3.1-8B's config.json, with the KV head count as the one free parameter.
    static ModelConfig Llama3_8B(int numKVHeads) => new()
    {
        ModelType = "llama",
        Architectures = ["LlamaForCausalLM"],
        HiddenSize = 4096,
        IntermediateSize = 14336,
        NumHiddenLayers = 32,
        NumAttentionHeads = 32,
        NumKeyValueHeads = numKVHeads,
        HeadDim = 128,
        VocabSize = 128256,
        RmsNormEps = 1e-5,
        Rope = new RopeConfig { Theta = 500000, Type = RopeType.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 },
        MaxPositionEmbeddings = 131072,
        Dtype = "bfloat16",
        BosTokenId = 128000,
        EosTokenIds = [128001],
    };

    // Meta-Llama-3.1-70B's config.json: the 8B's rope, vocabulary and head size at 80 layers of hidden 8192.
    static ModelConfig Llama3_70B() => Llama3_8B(numKVHeads: 8) with
    {
        HiddenSize = 8192,
        IntermediateSize = 28672,
        NumHiddenLayers = 80,
        NumAttentionHeads = 64,
    };

    // google/gemma-3-4b-it's text_config, through the gemma3_text reader as a checkpoint's would be read
    static ModelConfig Gemma3_4B() => ModelConfigReader.Read(new JsonFields(new JsonObject
    {
        ["architectures"] = new JsonArray("Gemma3ForCausalLM"), ["model_type"] = "gemma3_text",
        ["hidden_size"] = 2560, ["intermediate_size"] = 10240, ["num_hidden_layers"] = 34, ["num_attention_heads"] = 8,
        ["num_key_value_heads"] = 4, ["head_dim"] = 256, ["vocab_size"] = 262208, ["sliding_window"] = 1024,
        ["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 }, ["max_position_embeddings"] = 131072,
        ["torch_dtype"] = "bfloat16", ["bos_token_id"] = 2, ["eos_token_id"] = new JsonArray(1, 106),
    }, "the gemma3-4b preset"));

    // google/gemma-2-9b's config.json, through the gemma2 reader as a checkpoint's would be read
    static ModelConfig Gemma2_9B() => ModelConfigReader.Read(new JsonFields(new JsonObject
    {
        ["architectures"] = new JsonArray("Gemma2ForCausalLM"), ["model_type"] = "gemma2",
        ["hidden_size"] = 3584, ["intermediate_size"] = 14336, ["num_hidden_layers"] = 42, ["num_attention_heads"] = 16,
        ["num_key_value_heads"] = 8, ["head_dim"] = 256, ["vocab_size"] = 256000, ["sliding_window"] = 4096,
        ["query_pre_attn_scalar"] = 256, ["attn_logit_softcapping"] = 50.0, ["final_logit_softcapping"] = 30.0,
        ["max_position_embeddings"] = 8192, ["rope_theta"] = 10000.0,
        ["torch_dtype"] = "bfloat16", ["bos_token_id"] = 2, ["eos_token_id"] = 1,
    }, "the gemma2-9b preset"));

    // Qwen/Qwen3-30B-A3B's config.json, through the qwen3_moe reader as a checkpoint's would be read
    static ModelConfig Qwen3_30B_A3B() => ModelConfigReader.Read(new JsonFields(new JsonObject
    {
        ["architectures"] = new JsonArray("Qwen3MoeForCausalLM"), ["model_type"] = "qwen3_moe",
        ["hidden_size"] = 2048, ["intermediate_size"] = 6144, ["num_hidden_layers"] = 48, ["num_attention_heads"] = 32,
        ["num_key_value_heads"] = 4, ["head_dim"] = 128, ["vocab_size"] = 151936, ["num_experts"] = 128, ["num_experts_per_tok"] = 8,
        ["moe_intermediate_size"] = 768, ["norm_topk_prob"] = true, ["decoder_sparse_step"] = 1, ["mlp_only_layers"] = new JsonArray(),
        ["rope_theta"] = 1000000.0, ["rms_norm_eps"] = 1e-6, ["max_position_embeddings"] = 40960, ["tie_word_embeddings"] = false,
        ["torch_dtype"] = "bfloat16", ["bos_token_id"] = 151643, ["eos_token_id"] = 151645,
    }, "the qwen3-30b-a3b preset"));

    // openai/gpt-oss-20b's config.json, through the gpt_oss reader as a checkpoint's would be read (layer_types left to
    // the family's pattern, as the released config spells it out: sliding from the first)
    static ModelConfig GptOss20B() => ModelConfigReader.Read(new JsonFields(new JsonObject
    {
        ["architectures"] = new JsonArray("GptOssForCausalLM"), ["model_type"] = "gpt_oss",
        ["hidden_size"] = 2880, ["intermediate_size"] = 2880, ["num_hidden_layers"] = 24, ["num_attention_heads"] = 64,
        ["num_key_value_heads"] = 8, ["head_dim"] = 64, ["vocab_size"] = 201088, ["num_local_experts"] = 32, ["num_experts_per_tok"] = 4,
        ["sliding_window"] = 128, ["swiglu_limit"] = 7.0, ["attention_bias"] = true, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 150000.0,
        ["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = 32.0, ["beta_fast"] = 32.0, ["beta_slow"] = 1.0, ["truncate"] = false,
            ["original_max_position_embeddings"] = 4096,
        },
        ["max_position_embeddings"] = 131072, ["tie_word_embeddings"] = false, ["torch_dtype"] = "bfloat16",
        ["bos_token_id"] = 199998, ["eos_token_id"] = 200002,
    }, "the gpt-oss-20b preset"));

    static ModelConfig Tiny(int numHeads, int numKVHeads, int headDim) => new()
    {
        ModelType = "llama",
        Architectures = ["LlamaForCausalLM"],
        HiddenSize = 256,
        IntermediateSize = 512,
        NumHiddenLayers = 2,
        NumAttentionHeads = numHeads,
        NumKeyValueHeads = numKVHeads,
        HeadDim = headDim,
        VocabSize = 8192,   // the embedded DefaultModel tokenizer's, which serves presets
        RmsNormEps = 1e-5,
        MaxPositionEmbeddings = 4096,
        Dtype = "float32",
        EosTokenIds = [0],
    };
}
