namespace Serving.Engine.Config;

/// The Hugging Face config.json of a Llama-style decoder (the architectures in ../Architectures), with computed
/// members. ModelConfig.Load refuses anything we would not compute exactly as transformers does, naming the field.
public sealed record ModelConfig
{
    public required string ModelType { get; init; }
    public IReadOnlyList<string> Architectures { get; init; } = [];
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    /// Equals NumAttentionHeads for MHA (num_key_value_heads absent), 1 for MQA.
    public required int NumKeyValueHeads { get; init; }
    /// head_dim, or HiddenSize / NumAttentionHeads when absent.
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public RopeConfig Rope { get; init; } = new();
    /// Fraction of each head's dimensions that rotary embedding turns (phi3's partial_rotary_factor); 1 turns all.
    public double PartialRotaryFactor { get; init; } = 1.0;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// Bias on the q, k and v projections (llama attention_bias; always on for qwen2).
    public bool QkvBias { get; init; }
    /// Bias on o_proj (llama attention_bias; never for qwen2 and mistral).
    public bool OutputBias { get; init; }
    public bool MlpBias { get; init; }
    /// Which norm q and k take (q_norm, k_norm), if any: before the rotary embedding, or after it under QkNormAfterRope.
    public QkNorm QkNorm { get; init; }
    /// q and k take their norm after the rotary embedding (Hunyuan's query_layernorm and key_layernorm), not before it.
    public bool QkNormAfterRope { get; init; }
    /// The MLP's gate activation: SiLU (SwiGLU, the default) or GELU's tanh approximation (gemma's GeGLU).
    public MlpActivation Activation { get; init; } = MlpActivation.Silu;
    /// Whether the MLP is gated, down(act(gate(x)) * up(x)), or not, down(act(up(x))): Apertus's (xIELU), starcoder2's.
    public bool GatedMlp { get; init; } = true;
    /// How an RMSNorm's weight scales the normalisation (Llama's: after rounding it to the dtype).
    public RmsNormWeight NormWeight { get; init; } = RmsNormWeight.AfterRounding;
    /// Norms on the attention output and on the MLP output, each before it joins the residual stream: gemma 2 and 3
    /// besides the pre-norms (whose pre-MLP norm is then pre_feedforward_layernorm), olmo2 instead of them.
    public bool SandwichNorms { get; init; }
    /// Whether each block norms its attention and MLP inputs (Llama's pre-norm); olmo2 norms only their outputs.
    public bool PreNorms { get; init; } = true;
    /// Norms subtract the mean before scaling by the root mean square (cohere's LayerNorm without bias) instead of RMSNorm.
    public bool NormsCentered { get; init; }
    /// The hidden norms are nn.LayerNorm with a bias (starcoder2's): torch's own layer_norm, as transformers computes
    /// them (in TorchSharp on every backend).
    public bool NormBias { get; init; }

    /// Every hidden norm an nn.LayerNorm with a bias (starcoder2's, Phi-3.5-MoE's; Nemotron's LayerNorm1P stores its
    /// weight as the offset from 1): centered, its weight applied in float32 before rounding, a bias.
    public ModelConfig WithLayerNorms(RmsNormWeight weight = RmsNormWeight.BeforeRounding) =>
        this with { NormsCentered = true, NormWeight = weight, NormBias = true };
    /// Attention and MLP read the same normed input and both outputs join the residual stream at once (cohere's
    /// parallel block: h + attn(norm(h)) + mlp(norm(h))); the block has no pre-MLP norm.
    public bool ParallelBlock { get; init; }
    /// The logits are multiplied by this (cohere's logit_scale); null: not.
    public double? LogitsMultiplier { get; init; }
    /// The embeddings are multiplied by this (gemma's sqrt(hidden_size), granite's embedding_multiplier); null: not.
    public double? EmbeddingMultiplier { get; init; }
    /// Whether the multiplier is rounded to the model's dtype before it multiplies (gemma's: sqrt(3072) = 55.4256 becomes
    /// 55.5 in bfloat16, as transformers computes it), or multiplies as the number it is (granite's).
    public bool EmbeddingMultiplierInModelDtype { get; init; }
    /// The attention logits' scale (gemma's query_pre_attn_scalar^-0.5); null: 1 / sqrt(head_dim).
    public double? AttentionScale { get; init; }
    /// tanh soft-capping, cap x tanh(x / cap), of the attention logits (gemma2's attn_logit_softcapping) and of the final
    /// logits (final_logit_softcapping); null: none.
    public double? AttentionSoftcap { get; init; }
    public double? FinalLogitSoftcap { get; init; }
    /// Per layer, the window of a sliding-window layer (a query sees itself and the window - 1 positions before it) or
    /// null for a layer that attends to the whole context (layer_types, else each family's pattern: every layer of
    /// mistral, mixtral and phi3 under sliding_window, gemma's and gpt-oss's alternating layers, qwen's from
    /// max_window_layers on under use_sliding_window); empty: every layer attends to the whole context. The window does
    /// not bound the context: attention masks it.
    public IReadOnlyList<int?> LayerWindows { get; init; } = [];
    /// false (config.json's is_causal: gte-Qwen2's bidirectional embeddings): every position of a prompt attends to the
    /// whole prompt, after it too. Such a model serves the pooling runner only, each prompt computed whole in one step,
    /// without prefix caching (a prefix's K/V depend on what follows it).
    public bool IsCausal { get; init; } = true;
    /// A layer's sliding window (LayerWindows), null when it attends to the whole context.
    public int? LayerWindow(int layer) => LayerWindows.Count > 0 ? LayerWindows[layer] : null;
    /// When every layer slides: the largest window, the most positions any query attends to; null: some layer (or
    /// every one) sees its whole context.
    public int? AttentionSpan => LayerWindows.Count > 0 && LayerWindows.All(w => w is not null) ? LayerWindows.Max() : null;
    /// The rope of the sliding-window layers when it is not Rope (gemma3's rope_local_base_freq); null: Rope.
    public RopeConfig? LocalRope { get; init; }
    /// The attention and MLP outputs are multiplied by this before they join the residual stream (granite's
    /// residual_multiplier); null: not.
    public double? ResidualMultiplier { get; init; }
    /// The logits are divided by this (granite's logits_scaling); null: not.
    public double? LogitsDivisor { get; init; }
    /// Rotary embedding turns adjacent pairs of dimensions (GPT-J's and GLM's layout: (x0, x1), (x2, x3), ...) rather
    /// than each dimension with the one half a head away (Llama's rotate_half).
    public bool InterleavedRope { get; init; }
    /// Where rotary embedding rounds (RotaryPrecision: Llama's in the model's dtype; cohere's and ERNIE's in float32).
    public RotaryPrecision RotaryPrecision { get; init; }
    /// The layers that apply no rotary embedding (smollm3's no_rope_layers: every fourth); empty: all apply it.
    public IReadOnlyList<int> NoRopeLayers { get; init; } = [];
    /// A mixture of experts in place of the MLP (mixtral, qwen3_moe): this many experts, 0 for a dense model.
    public int NumExperts { get; init; }
    /// Experts each token is routed to (num_experts_per_tok), by the router's top softmax probabilities.
    public int NumExpertsPerToken { get; init; }
    /// Each expert's ffn width (qwen3_moe's moe_intermediate_size; mixtral's intermediate_size).
    public int ExpertIntermediateSize { get; init; }
    /// The chosen experts' probabilities scaled to sum to 1 (mixtral always; qwen3_moe's norm_topk_prob).
    public bool NormalizeTopKProbabilities { get; init; }
    /// How the router chooses and weighs each token's experts (ExpertRouting).
    public ExpertRouting Routing { get; init; }
    /// phimoe's router_jitter_noise: how near the top logit SparseMixer's softmax reaches (ExpertRouting.SparseMixer).
    public double RouterJitter { get; init; }
    /// A shared expert every token runs besides its routed ones (qwen2_moe's shared_expert_intermediate_size, ernie4_5_moe's
    /// shared experts together); 0: none.
    public int SharedExpertIntermediateSize { get; init; }
    /// The shared expert's output scaled by the sigmoid of its own gate (qwen2_moe's shared_expert_gate); false: added as it is.
    public bool SharedExpertGated { get; init; }
    /// The router's product and softmax in float32 over a float32 weight, whatever the model's dtype (ernie4_5_moe keeps
    /// its gate in float32).
    public bool RouterInFloat32 { get; init; }
    /// A per-expert bias added to the router's probabilities to choose each token's experts, not to weigh them
    /// (ernie4_5_moe's moe_statics.e_score_correction_bias).
    public bool ExpertChoiceBias { get; init; }
    /// gpt-oss's experts, when set: each expert's gate and up columns interleaved in one stored [hidden, 2F] matrix with a
    /// bias, the gate clamped above at this limit (swiglu_limit) and up to +-limit, gate x sigmoid(1.702 gate) x (up + 1),
    /// then a down matrix [F, hidden] with a bias; the router has a bias and softmaxes its top-k logits. null: the other
    /// mixtures' SwiGLU experts.
    public double? ExpertSwigluLimit { get; init; }
    /// A learned logit per query head joins the softmax of each query's attention scores as a key with no value (gpt-oss's
    /// sinks): the real keys' probabilities sum to less than 1, so a head may attend to nothing.
    public bool AttentionSinks { get; init; }
    /// The layers of a mixture-of-experts model that keep a dense MLP of IntermediateSize (qwen3_moe's mlp_only_layers and
    /// decoder_sparse_step); empty: every layer routes.
    public IReadOnlyList<int> DenseLayers { get; init; } = [];
    /// Whether a layer's MLP is a mixture of experts.
    public bool IsExpertLayer(int layer) => NumExperts > 0 && !DenseLayers.Contains(layer);
    /// Whether the decoder is the Llama block the training backend computes: SwiGLU, Llama's RMSNorm, no sandwich norms,
    /// plain causal attention scaled by 1 / sqrt(head_dim) with rotary positions in every layer (one window in every
    /// layer at most: mistral's), no soft-capping, sinks, multipliers or experts.
    public bool IsLlamaBlock => Activation == MlpActivation.Silu && NumExperts == 0 && NormWeight == RmsNormWeight.AfterRounding
        && !SandwichNorms && PreNorms && (QkNorm is QkNorm.None or QkNorm.EachHead) && !QkNormAfterRope && EmbeddingMultiplier is null
        && AttentionScale is null && AttentionSoftcap is null && FinalLogitSoftcap is null && LayerWindows.Distinct().Count() <= 1 && LocalRope is null && IsCausal
        && ResidualMultiplier is null && LogitsDivisor is null && NoRopeLayers.Count == 0 && !InterleavedRope
        && !NormsCentered && !NormBias && GatedMlp && !ParallelBlock && LogitsMultiplier is null && !AttentionSinks;
    /// Whether the fused CUDA kernels compute this decoder's norms, rotary embedding, K/V write and attention: RMSNorm
    /// with its weight applied any way (NormWeight) or cohere's LayerNorm (NormsCentered), q/k norms per head (a whole
    /// projection's are TorchSharp), rotary embedding over the first RotaryDim dimensions in halves or interleaved
    /// pairs (or none, NoRopeLayers; the sliding layers by their own LocalRope), causal attention at any scale over
    /// the whole context or a layer's window, with sinks (on tensor cores: CudaBackend.Supports) and gemma2's
    /// soft-capping. What the decoder does around them (multipliers, sandwich norms, GeGLU, experts, the final logits'
    /// soft-capping) is TorchSharp on either backend. So every causal family runs the fused backend on the GPU; a
    /// bidirectional encoder (EmbeddingGemma) runs the plain one.
    public bool FusedKernelsCompute => IsCausal;
    /// Whether a layer's rotary embedding is LocalRope's (gemma3's sliding layers) rather than Rope's.
    public bool TurnsByLocalRope(int layer) => LocalRope is not null && LayerWindow(layer) is not null;
    /// The attention logits' scale: AttentionScale, else 1 / sqrt(head_dim).
    public double SoftmaxScale => AttentionScale ?? 1.0 / Math.Sqrt(HeadDim);
    public bool TieWordEmbeddings { get; init; }
    /// A bias on the LM head (phimoe's lm_head_bias).
    public bool LmHeadBias { get; init; }
    /// torch_dtype / dtype of the checkpoint ("float32", "bfloat16", "float16"), if written.
    public string? Dtype { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// An embedding model trained to keep its meaning in its leading dimensions (Matryoshka representation learning),
    /// so a request may ask for fewer (vLLM reads is_matryoshka and matryoshka_dimensions, the latter listing the
    /// sizes allowed).
    public bool IsMatryoshka { get; init; }
    public IReadOnlyList<int> MatryoshkaDimensions { get; init; } = [];
    /// Whether a request may ask for fewer dimensions: either field says so (as vLLM reads them).
    public bool AllowsMatryoshkaDimensions => IsMatryoshka || MatryoshkaDimensions.Count > 0;
    /// A sequence classifier's labels in id order (config.json id2label, else LABEL_i for num_labels, transformers' 2 by
    /// default); empty for any other architecture.
    public IReadOnlyList<string> Labels { get; init; } = [];
    /// A *ForSequenceClassification checkpoint: a `score` head of one row per label instead of the LM head.
    public bool IsClassifier => Labels.Count > 0;
    /// vLLM's classifier_from_token (set with --hf-overrides on a causal checkpoint named a *ForSequenceClassification):
    /// the classifier's rows are the LM head's rows of these tokens, so a causal model trained to answer "yes" or "no"
    /// (the original Qwen3-Reranker) serves as one; empty for a checkpoint with its own score head.
    public IReadOnlyList<string> ClassifierFromToken { get; init; } = [];
    /// With two classifier tokens, one label scoring the second against the first (the logit of the second minus the
    /// first's: a sigmoid of it is the 2-way softmax of the second): vLLM's method from_2_way_softmax, which
    /// is_original_qwen3_reranker implies.
    public bool ClassifierTwoWay { get; init; }
    /// A cross-encoder scores the two texts of a pair joined into one text (vLLM's use_pad_token false, its default for
    /// a classifier made from tokens: an LLM as reranker) rather than encoded as a tokenizer's pair.
    public bool JoinsScorePairs { get; init; }
    /// A cross-encoder's score is its raw logit (sbert_ce_default_activation_function or sentence_transformers'
    /// activation_fn an Identity) rather than its sigmoid.
    public bool ScoreActivationIsIdentity { get; init; }
    /// The checkpoint holds a `score` head (not one made from the LM head's rows).
    public bool HasScoreHead => IsClassifier && ClassifierFromToken.Count == 0;
    /// A classifier's problem_type (transformers': regression, single_label_classification, multi_label_classification),
    /// which decides how its logits become scores; null when config.json does not say.
    public string? ProblemType { get; init; }
    /// How the checkpoint's weights are quantized (quantization_config); null: they are not. They are dequantized as
    /// they load, so nothing past the loader sees it.
    public WeightQuantization? Quantization { get; init; }

    public int NumQueriesPerKV => NumAttentionHeads / NumKeyValueHeads;
    /// Width of the concatenated query heads: NumAttentionHeads x HeadDim.
    public int QSize => NumAttentionHeads * HeadDim;
    /// Width of the concatenated K (or V) heads: NumKeyValueHeads x HeadDim.
    public int KVSize => NumKeyValueHeads * HeadDim;
    /// The shape of q_norm's weight (heads: NumAttentionHeads) or k_norm's (NumKeyValueHeads), as QkNorm says: (head_dim)
    /// that every head shares, (heads, head_dim), or (heads x head_dim) over the whole projection.
    public long[] QkNormShape(int heads) => QkNorm switch
    {
        QkNorm.EachHead => [HeadDim],
        QkNorm.EachHeadOwnWeight => [heads, HeadDim],
        QkNorm.WholeProjection => [(long)heads * HeadDim],
        _ => throw new InvalidOperationException($"{Architecture} has no q/k norms"),
    };
    /// Dimensions of each head that rotary embedding turns (the first RotaryDim; the rest pass through).
    public int RotaryDim => (int)(HeadDim * PartialRotaryFactor);
    /// The context the rope was set up for (vLLM's derived max model length): max_position_embeddings, stretched
    /// by the factor of linear and yarn scaling (see RopeConfig.ContextLength).
    public int RopeContextLength => Rope.ContextLength(MaxPositionEmbeddings);
    /// sentence-transformers' max_seq_length (sentence_bert_config.json beside config.json): the longest input the
    /// embedding model was made for, which vLLM serves as the model's length; null when the folder has none.
    public int? SentenceTransformersMaxLength { get; init; }
    /// Longest sequence (prompt + completion) this checkpoint serves exactly.
    public int MaxContextLength => Math.Min(RopeContextLength, SentenceTransformersMaxLength ?? int.MaxValue);
    /// The architecture name: the first of `architectures`, else the model type.
    public string Architecture => Architectures.FirstOrDefault() ?? ModelType;

    /// The max model length to serve: requested (0 means as long as possible), refused beyond MaxContextLength.
    public int ResolveMaxModelLen(int requested)
    {
        if (requested <= 0) return MaxContextLength;
        if (requested <= MaxContextLength) return requested;
        throw new ModelConfigException($"max model length {requested} exceeds what this checkpoint serves ({ContextLimit()})");
    }

    // what sets MaxContextLength, in words
    string ContextLimit()
    {
        if (SentenceTransformersMaxLength is { } length && length == MaxContextLength)
            return $"sentence_bert_config.json's max_seq_length = {length}";
        if (RopeContextLength != MaxPositionEmbeddings)
            return $"max_position_embeddings = {MaxPositionEmbeddings}, {Rope.Type.ToString().ToLowerInvariant()} rope scaling by {Rope.Factor} serves {RopeContextLength}";
        return $"max_position_embeddings = {MaxPositionEmbeddings}";
    }

    /// Reads config.json from a checkpoint folder, with <paramref name="overrides"/> (--hf-overrides) replacing its fields.
    public static ModelConfig Load(string checkpointDir, HfOverrides? overrides = null)
    {
        var json = JsonFields.Load(Path.Combine(checkpointDir, "config.json"));
        var config = ModelConfigReader.Read(overrides is null ? json : overrides.ApplyTo(json.Json));
        var sentenceTransformers = Path.Combine(checkpointDir, "sentence_bert_config.json");
        return File.Exists(sentenceTransformers)
            ? config with { SentenceTransformersMaxLength = JsonFields.Load(sentenceTransformers).Int("max_seq_length") is { } length and > 0 ? length : null }
            : config;
    }
}

/// The gate activation of a gated MLP: down(act(gate(x)) * up(x)).
public enum MlpActivation
{
    /// SiLU (SwiGLU): llama, mistral, qwen, phi3.
    Silu,
    /// GELU's tanh approximation (transformers' gelu_pytorch_tanh, gelu_new): gemma.
    GeluTanh,
    /// xIELU, with a learned alpha_p, alpha_n, beta and eps per layer, in an MLP without a gate: Apertus.
    Xielu,
    /// relu(x)^2 (transformers' relu2), in an MLP without a gate: Nemotron.
    Relu2,
}

/// Where rotary embedding rounds to the model's dtype, as each family's transformers code computes it (the values are
/// the fused kernels' ROPE_PRECISION codes).
public enum RotaryPrecision
{
    /// cos and sin rounded to the model's dtype, each product and the sum rounded too: Llama's, and most families'.
    ModelDtype = 0,
    /// q and k turned in float32 by cos and sin rounded to the model's dtype, rounded once: cohere's.
    Float32RoundedTables = 1,
    /// q and k turned in float32 by float32 cos and sin, rounded once: ERNIE 4.5's ("full precision").
    Float32 = 2,
}

/// The norm q and k take (q_norm and k_norm), computed as the model's other norms are (NormWeight, NormsCentered).
public enum QkNorm
{
    /// None: Llama's.
    None,
    /// Each head on its own, by one (head_dim) weight every head shares: qwen3's, gemma3's.
    EachHead,
    /// Each head on its own, by a weight of its own, (heads, head_dim): Command R+'s (cohere's use_qk_norm).
    EachHeadOwnWeight,
    /// All of q and all of k at once, by a weight as wide as the projection: olmo2's.
    WholeProjection,
}

/// How a mixture's router chooses and weighs each token's experts.
public enum ExpertRouting
{
    /// The top k by the softmax of the router's logits in float32 (with ernie's choice bias added), weighed by those
    /// probabilities, normalized where NormalizeTopKProbabilities says: mixtral's, qwen's, ernie's.
    TopKProbabilities,
    /// The top k logits in float32, weighed by the softmax over those k alone: GraniteMoE's (JetMoE's gating).
    SoftmaxOverTopK,
    /// phimoe's SparseMixer at inference, two experts: the top logit, weighed by the softmax over the logits within
    /// 2 x RouterJitter of it (relative to their magnitude); then the top of the rest, likewise.
    SparseMixer,
}

/// How an RMSNorm's weight w scales the normalisation n = x / rms(x), computed in float32 (the values are the fused
/// kernels' NORM_WEIGHT codes).
public enum RmsNormWeight
{
    /// w x round(n): Llama's, and most families'.
    AfterRounding = 0,
    /// round(w x n), in float32 first: olmo2's, cohere's, gpt-oss's.
    BeforeRounding = 1,
    /// round((1 + w) x n): gemma's, whose weight is stored as an offset from 1.
    OffsetBeforeRounding = 2,
}
