using Serving.Engine.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The operations the decoder is written against, bound to one forward step (its metadata on the device and the
/// KV pool). Each has two implementations: TorchStep, plain TorchSharp for any device and dtype (the reference),
/// and CudaStep, the fused NVRTC kernels. The embedding lookup is plain TorchSharp in both, linear layers too unless the
/// fused backend has timed a faster cuBLASLt algorithm for the step's batch size.
/// Tensors: x, residual, hidden (numTokens, hidden); qkv (numTokens, (H + 2G) D) = [q heads | k heads | v heads].
/// Under tensor parallelism (../../Distributed) a step runs one rank's part of the model and its collectives join the
/// ranks: AllReduce and AllGatherColumns, both no-ops at one rank.
internal abstract class DecoderStep(ICommunicator? communicator) : IDisposable
{
    readonly List<IDisposable> _owned = [];

    /// (numTokens) int32 or int64: the step's token ids on the model's device.
    public abstract Tensor TokenIds { get; }

    /// (numLogits) rows whose logits the step returns, on the device; null when that is every row.
    public abstract Tensor? LogitRows { get; }

    /// The LoRA adapters of the step's sequences and their rows; null when none has one (the base model alone).
    public Lora.LoraStep? Lora { get; set; }

    /// weight * RMSNorm(x), normalised in float32 and rounded to the model dtype as transformers does.
    /// bias: a LayerNorm's (ModelConfig.NormBias), else null.
    public abstract Tensor RmsNorm(Tensor x, Tensor weight, double eps, Tensor? bias = null);

    /// The pre-norm block's add + norm: residual' = residual + x, then weight * RMSNorm(residual'). Returns both;
    /// a backend may update residual in place and return the same tensor.
    public abstract (Tensor Normed, Tensor Residual) AddRmsNorm(Tensor x, Tensor residual, Tensor weight, double eps, Tensor? bias = null);

    /// RMSNorm over each query head (qWeight) and key head (kWeight) of qkv: before the rotary embedding (qwen3) or
    /// after it (Hunyuan), as ModelConfig.QkNormAfterRope says.
    public abstract Tensor HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps);

    /// Rotates q and k by their positions (a layer without rotary embedding keeps them). Returns qkv with q and k
    /// rotated (a backend may rotate in place and return the same tensor).
    public abstract Tensor Rotary(Tensor qkv, int layer);

    /// Writes k and v of qkv into the layer's pool at the step's slots. Returns qkv.
    public abstract Tensor CacheWrite(Tensor qkv, int layer);

    /// Rotary, then CacheWrite: one kernel on the fused backend.
    public virtual Tensor RotaryAndCacheWrite(Tensor qkv, int layer) => CacheWrite(Rotary(qkv, layer), layer);

    /// HeadRmsNorm, then RotaryAndCacheWrite (qwen3's norms before the rotary embedding): one kernel on the fused backend.
    public virtual Tensor HeadRmsNormRotaryAndCacheWrite(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps, int layer) =>
        RotaryAndCacheWrite(HeadRmsNorm(qkv, qWeight, kWeight, eps), layer);

    /// Attention of every new token over its sequence's context (already written), one KV head per group of query
    /// heads: (numTokens, H D), heads in query-head order. sinks (H): gpt-oss's per-head logit that joins each softmax
    /// without a value (ModelConfig.AttentionSinks); null: none.
    public abstract Tensor Attention(Tensor qkv, int layer, Tensor? sinks);

    /// silu(gate) * up, from gateUp (numTokens, 2 ffn) = [gate | up]: (numTokens, ffn).
    public abstract Tensor SiluAndMul(Tensor gateUp);

    /// gelu(gate) * up with GELU's tanh approximation (gemma): plain TorchSharp on every backend (no fused kernel).
    public virtual Tensor GeluTanhAndMul(Tensor gateUp) => TorchOps.GeluTanhAndMul(gateUp);

    /// gpt-oss's experts' activation: gateUp (rows, 2 ffn), gate and up interleaved (gate at the even columns), plus
    /// bias (experts, 2 ffn) at each row's expert (expertOfRow, (rows) int64); the gate clamped above at limit and up to
    /// +-limit: (up + 1) x gate x sigmoid(1.702 gate), (rows, ffn).
    public virtual Tensor ClampedGlu(Tensor gateUp, Tensor bias, Tensor expertOfRow, double limit) =>
        TorchOps.ClampedGlu(gateUp, bias, expertOfRow, limit);

    /// Each token's experts and their weights from a mixture's router logits (numTokens, experts), as choice says:
    /// chosen (numTokens, k) int64, largest first, and weights (numTokens, k) in dtype (ExpertChoice.Choose's TorchSharp
    /// here; the fused backend's one kernel).
    public virtual (Tensor Chosen, Tensor Weights) ChooseExperts(Tensor logits, ExpertChoice choice, ScalarType dtype) =>
        choice.Choose(logits, dtype);

    /// A step's slots (chosen (numTokens, k) int64 and their weights) grouped by expert, of experts (ExpertGroups.Of's
    /// TorchSharp here; the fused backend's one kernel).
    public virtual ExpertGroups GroupExperts(Tensor chosen, Tensor weights, int experts) => ExpertGroups.Of(chosen, weights, experts);

    /// ChooseExperts, then GroupExperts of the choice over logits.size(1) experts (the fused backend's one kernel for a
    /// step of few tokens).
    public virtual ExpertGroups RouteExperts(Tensor logits, ExpertChoice choice, ScalarType dtype)
    {
        var (chosen, weights) = ChooseExperts(logits, choice, dtype);
        return GroupExperts(chosen, weights, (int)logits.size(1));
    }

    /// A mixture's routing from its input x (numTokens, hidden): the router's logits (router.Forward), then RouteExperts
    /// over them (the fused backend computes the product in its routing kernel, for a step of few tokens).
    public virtual ExpertGroups RouteTokens(Tensor x, Linear router, ExpertChoice choice, ScalarType dtype) =>
        RouteExperts(router.Forward(this, x), choice, dtype);

    /// Each token's experts' outputs, grouped (slots, hidden) by grouped row (null where no token was routed), each
    /// with its expert's row of bias (experts, hidden) added first where given, weighed and summed: (numTokens, hidden)
    /// like x (ExpertGroups.Combine's TorchSharp here; the fused backend's one kernel).
    public virtual Tensor CombineExperts(ExpertGroups groups, Tensor? grouped, Tensor x, Tensor? bias) => groups.Combine(grouped, x, bias);

    /// An ungated MLP's activation of up (numTokens, ffn): starcoder2's GELU, Nemotron's ReLU^2; TorchSharp on every backend.
    public virtual Tensor UngatedActivation(Tensor up, Config.MlpActivation activation) => TorchOps.UngatedActivation(up, activation);

    /// xIELU of up (numTokens, ffn) by a layer's learned parameters (Apertus): plain TorchSharp on every backend.
    public virtual Tensor Xielu(Tensor up, XieluParameters parameters) =>
        TorchOps.Xielu(up, parameters.AlphaP, parameters.AlphaN, parameters.Beta, parameters.Eps);

    /// x W^T (+ bias): x (numTokens, in), weight (out, in) -> (numTokens, out). TorchSharp's linear (cuBLAS's own
    /// choice of algorithm); the fused backend runs a decode step's products with the algorithm timed fastest for
    /// its batch size (../../Cuda/MatmulTuning.cs).
    public virtual Tensor Linear(Tensor x, Tensor weight, Tensor? bias) => nn.functional.linear(x, weight, bias);

    /// Whether this step runs a mixture's expert products over slots rows (grouped by expert, of experts) in one kernel
    /// that reads the groups on the device (ExpertsLinear), rather than a product a group counted on the host: only the
    /// fused backend's steps do. rowsAPass: the rows that kernel multiplies in one pass over an expert's weight.
    public virtual bool GroupsExpertsOnTheDevice(long slots, int experts, int rowsAPass) => false;

    /// output (slots, rows) = each expert's rows of x (slots, columns; grouped by expert as starts, ExpertGroups.Starts,
    /// says) times its rows of weight (experts x rows, columns) transposed, in one kernel (GroupsExpertsOnTheDevice).
    /// gather: x holds the tokens' rows (numTokens, columns) instead, each grouped row its token's (ExpertGroups.Tokens),
    /// read by the kernel where they lie. glu: the rows are gates and ups, and output (slots, rows / 2) takes the
    /// activation of the product in the same kernel (the same bits as SiluAndMul or ClampedGlu of it).
    public virtual void ExpertsLinear(Tensor x, Tensor weight, ExpertGroups groups, bool gather, Tensor output, Cuda.GluActivation? glu = null) =>
        throw new NotSupportedException("only the fused backend runs the experts' products on groups the device counts");

    /// The same with FP8 experts stacked (Fp8Products.ExpertsLinear).
    public virtual void ExpertsLinear(Tensor x, Cuda.Fp8Experts experts, ExpertGroups groups, bool gather, Tensor output) =>
        throw new NotSupportedException("only the fused backend runs the experts' products on groups the device counts");

    /// Sums a rank's partial x (numTokens, hidden) over the tensor-parallel ranks: after o_proj and down_proj
    /// (row parallel) and the vocabulary-sharded embedding lookup. Returns x itself at one rank.
    public Tensor AllReduce(Tensor x)
    {
        if (communicator is null) return x;
        x = x.contiguous();
        communicator.AllReduce(x);
        return x;
    }

    /// Every rank's x (rows, columns) side by side, in rank order: (rows, ranks x columns), the vocabulary-sharded
    /// logits made whole. Returns x itself at one rank.
    public Tensor AllGatherColumns(Tensor x)
    {
        if (communicator is null) return x;
        var (rows, columns) = (x.size(0), x.size(1));
        var all = x.new_empty(communicator.Size, rows, columns);                // (ranks, rows, columns)
        communicator.AllGather(x.contiguous(), all);
        return all.permute(1, 0, 2).reshape(rows, communicator.Size * columns);
    }

    /// Takes the tensors a scope collected while the step was built (its metadata): they live until Dispose.
    protected void Keep(DisposeScope scope)
    {
        var made = scope.DisposablesView.ToList();
        scope.Detach(made);
        _owned.AddRange(made);
    }

    public void Dispose()
    {
        foreach (var tensor in _owned) tensor.Dispose();
        _owned.Clear();
    }
}

/// Makes the DecoderStep of each forward step for one model; owns what lives across steps (rotary table, compiled
/// kernels, fixed device buffers).
internal abstract class DecoderBackend : IDisposable
{
    /// The rank's collectives under tensor parallelism; null at one rank.
    public ICommunicator? Communicator { get; init; }

    public abstract DecoderStep Begin(StepInputs inputs, KVCache.PagedKVCache cache);

    public abstract void Dispose();
}
