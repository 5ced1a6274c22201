using Serving.Engine.Config;
using Serving.Engine.KVCache;
using Serving.Engine.Model.Backends;
using Serving.Engine.Distributed;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// The decoder every registered architecture runs (../Architectures), over a flat batch of tokens from several
/// sequences and the paged KV pool: embed, N pre-norm blocks, final norm, LM head. Written once against the
/// DecoderStep operations; the backend (plain TorchSharp or the fused CUDA kernels) supplies them. Parameter names
/// follow the checkpoint's without the "model." prefix, except the fused qkv_proj and gate_up_proj.
///
/// Under tensor parallelism (../Distributed) each rank builds this same decoder from its shard's config (fewer heads,
/// KV heads, ffn columns and vocabulary rows); the step's collectives join the ranks: the embedding lookups and the
/// outputs of o_proj and down_proj are summed over the ranks, the logits gathered. At one rank they do nothing.
internal sealed class CausalLM : nn.Module
{
    [ComponentName(Name = "embed_tokens")] readonly Embedding _embedTokens;  // (vocab, hidden)
    [ComponentName(Name = "layers")] readonly ModuleList<DecoderLayer> _layers;
    [ComponentName(Name = "norm")] readonly RmsNorm _norm;
    [ComponentName(Name = "lm_head")] readonly Linear? _lmHead;              // (vocab, hidden); null when tied to embed_tokens or absent
    [ComponentName(Name = "score")] readonly Linear? _score;                 // (labels, hidden); a sequence classifier's head

    public CausalLM(ModelConfig config, ScalarType dtype, Device device) : this(ModelShard.Whole(config), dtype, device)
    {
    }

    /// lmHead false: no LM head (the pooling runner's decoder, which returns hidden states and no logits).
    /// projectionsUnallocated: the decoder's projections (those with a LoRA target) start with no rows, for the loader
    /// to allocate one at a time (Linear.Allocate; an FP8 checkpoint served in FP8, ../Weights/IUnallocatedParameters).
    public CausalLM(ModelShard shard, ScalarType dtype, Device device, bool lmHead = true, bool projectionsUnallocated = false) : base("CausalLM")
    {
        var classifier = shard.Config.IsClassifier;
        HasLmHead = lmHead && !classifier;
        (Shard, Dtype, Device) = (shard, dtype, device);
        var config = shard.Config;
        _embedTokens = new Embedding(config.VocabSize, config.HiddenSize, dtype, device, shard.VocabStart, sharded: shard.Size > 1);
        _layers = new ModuleList<DecoderLayer>(
            Enumerable.Range(0, config.NumHiddenLayers).Select(i => new DecoderLayer(config, i, dtype, device, projectionsUnallocated)).ToArray());
        _norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device, config.NormBias);
        _score = config.HasScoreHead ? new Linear(config.HiddenSize, config.Labels.Count, false, dtype, device) : null;
        // a classifier made from the LM head's rows (classifier_from_token) keeps the LM head to take them from
        var keepsLmHead = HasLmHead || config.ClassifierFromToken.Count > 0;
        _lmHead = config.TieWordEmbeddings || !keepsLmHead ? null : new Linear(config.HiddenSize, config.VocabSize, config.LmHeadBias, dtype, device);
        if (config.EmbeddingMultiplier is { } multiplier)
        {
            using var rounded = tensor(multiplier).to_type(config.EmbeddingMultiplierInModelDtype ? dtype : ScalarType.Float64);
            _embeddingScale = rounded.to_type(ScalarType.Float64).item<double>().ToScalar();
        }
        (_finalSoftcap, _logitsDivisor, _logitsMultiplier) =
            (config.FinalLogitSoftcap?.ToScalar(), config.LogitsDivisor?.ToScalar(), config.LogitsMultiplier?.ToScalar());
        RegisterComponents();
    }

    /// What this rank computes (the whole model's config at one rank).
    public ModelConfig Config => Shard.Config;

    /// This rank's part of the model (ModelShard.Whole at one rank).
    public ModelShard Shard { get; }
    public ScalarType Dtype { get; }

    // What the embeddings are multiplied by, a host scalar (a step copies nothing to the device, so a CUDA graph can
    // capture it) the model holds (HeldScalars says why): gemma's sqrt(hidden_size) rounded to the model's dtype first,
    // granite's embedding_multiplier as it is (both as transformers computes them); null: none.
    readonly Scalar? _embeddingScale;
    // the logits' gemma2 cap, granite divisor and cohere multiplier, held likewise
    readonly Scalar? _finalSoftcap, _logitsDivisor, _logitsMultiplier;
    public Device Device { get; }

    /// False for the pooling runner's decoder: a step may then return hidden states but no logits.
    public bool HasLmHead { get; }

    /// Whether a step on the fused backend reads the device's results on the host before it ends (a mixture whose
    /// experts' groups are counted there: FeedForward.WaitsForTheHost): such a step cannot be captured as a CUDA graph.
    public bool StepWaitsForTheHost => _layers.Any(layer => layer.WaitsForTheHost);

    /// (vocab, hidden): the token embedding table.
    public Tensor EmbeddingTable => _embedTokens.Weight;

    /// The weights in the model's type a step multiplies by (W of y = x W^T): every linear layer's and the LM head's (the
    /// embedding when tied); not the FP8 ones.
    public IEnumerable<Tensor> LinearWeights()
    {
        foreach (var linear in modules().OfType<Linear>().Where(linear => linear.Fp8 is null)) yield return linear.Weight;
        if (_lmHead is null && HasLmHead) yield return _embedTokens.Weight;
    }

    /// The decoder's projections to store as FP8 (IFp8Storable.QuantizeToFp8), as vLLM's fp8 method quantizes them:
    /// the attention's and the MLPs' (qkv, o, a dense layer's or a shared expert's gate/up and down, a mixture's experts
    /// of each kind) still in the model's type and of a shape FP8 products take; the LM head, the embeddings, routers,
    /// gates and classifier heads stay in the model's type (so do gpt-oss's experts).
    public IReadOnlyList<IFp8Storable> Fp8Projections() => modules().OfType<IFp8Storable>()
        .Where(weight => IsProjection(weight) && weight.Fp8Parts.Count == 0 && weight.TakesFp8Shape)
        .ToList();

    static bool IsProjection(IFp8Storable weight) => weight is ExpertWeights or Linear { DecoderProjection: true };

    /// The kernels and cuBLASLt state the FP8 projections run on, made by the first StoreFp8; null before. Owned here.
    public Cuda.Fp8Products? Fp8Products { get; private set; }

    /// Projections stored with FP8 scales by the checkpoint that StoreFp8 left in the model's type (FP8 products do not
    /// take their scales here: per block, where cuBLASLt takes no blocks of scales or the shape is not whole blocks).
    public int CheckpointFp8Left { get; private set; }

    /// Stores one of the Fp8Projections in FP8 (IFp8Storable.QuantizeToFp8) and gives its 16-bit memory back to the
    /// driver: by the scales its checkpoint stored it with (IFp8Storable.CheckpointFp8Scales) where FP8 products take them, else,
    /// online, by one scale from its largest magnitude. Returns whether it is FP8 now (a projection with scales FP8
    /// products do not take stays in the model's type, its scales gone). Throws where FP8 products cannot run
    /// (Fp8Products.Unsupported).
    public bool StoreFp8(IFp8Storable projection, bool online)
    {
        var products = Fp8Products ??= new Cuda.Fp8Products(Device, Dtype);
        var scales = projection.CheckpointFp8Scales;
        if (scales is null ? !online : !projection.TakesCheckpointScales(products))
        {
            if (scales is not null) CheckpointFp8Left++;
            projection.CheckpointFp8Scales = null;
            return false;
        }
        projection.QuantizeToFp8(products);
        // the weight's memory back to the driver before the next FP8 values are allocated: libtorch's allocator would
        // otherwise carve them out of it, and a split block is one it cannot give back
        Cuda.CachedDeviceMemory.Release(Device);
        return true;
    }

    /// Gives each projection the scales its FP8 checkpoint stored it with (WeightLoader.Load's, by parameter
    /// name; IFp8Storable.CheckpointFp8Scales), so that it can be served in FP8 as stored; takes the tensors (the scales of
    /// other parameters are disposed).
    public void KeepCheckpointFp8Scales(Dictionary<string, Tensor> scalesByParameter)
    {
        foreach (var (name, module) in named_modules())
            if (module is IFp8Storable weight && IsProjection(weight) && scalesByParameter.Remove(name + ".weight", out var scales))
                weight.CheckpointFp8Scales = scales;
        foreach (var scales in scalesByParameter.Values) scales.Dispose();
    }

    /// The projections stored as FP8 (QuantizeToFp8).
    public IReadOnlyList<Cuda.Fp8Weight> Fp8Weights() => modules().OfType<IFp8Storable>().SelectMany(weight => weight.Fp8Parts).ToList();

    /// The FP8 projections whose decode products may run cuBLASLt, for its tuning (Fp8Products.Tune): not a mixture's
    /// experts multiplied over groups the device counts (one kernel, nothing to choose).
    public IReadOnlyList<Cuda.Fp8Weight> Fp8WeightsToTune() => modules().OfType<IFp8Storable>()
        .Where(weight => weight is not ExpertWeights { GroupedOnTheDevice: true }).SelectMany(weight => weight.Fp8Parts).ToList();

    /// Bytes of the FP8 projections' values and scales (outside parameters()).
    public long Fp8WeightBytes => Fp8Weights().Sum(weight => weight.Bytes);

    /// Bytes of the mixtures' experts (ExpertWeights; in the model's type or FP8).
    public long ExpertWeightBytes => modules().OfType<ExpertWeights>()
        .Sum(experts => experts.Weight.NumberOfElements * experts.Weight.ElementSize + experts.Fp8Parts.Sum(part => part.Bytes));

    /// Runs one step: logits of the step's LogitRows, or of every new token with allRows: (rows, vocab) float32.
    /// The caller's dispose scope owns the result.
    public Tensor Forward(DecoderStep step, bool allRows)
    {
        using var noGrad = torch.no_grad();
        return Run(step, allRows, hiddenRows: null).Logits;
    }

    /// Runs one step: the logits as Forward gives them, and the final (normed) hidden states of hiddenRows, (rows,
    /// hidden) float32, for pooling; a classifier's are its head's logits, (rows, labels) float32 (the head is linear,
    /// so pooling them is pooling the hidden states first). The caller's dispose scope owns both.
    public StepOutput Forward(DecoderStep step, bool allRows, int[] hiddenRows)
    {
        using var noGrad = torch.no_grad();
        return Run(step, allRows, hiddenRows);
    }

    /// The forward without no_grad, for training (the backend must be one autograd can follow).
    public Tensor Logits(DecoderStep step, bool allRows) => Run(step, allRows, hiddenRows: null).Logits;

    StepOutput Run(DecoderStep step, bool allRows, int[]? hiddenRows)
    {
        using var scope = NewDisposeScope();
        var hidden = step.AllReduce(_embedTokens.forward(step.TokenIds));        // (numTokens, hidden)
        if (_embeddingScale is { } scale) hidden = hidden * scale;
        Tensor? residual = null;
        foreach (var layer in _layers)
            (hidden, residual) = RunLayer(layer, step, hidden, residual);
        // the norm runs on the rows read after it: the logits' alone, unless hidden states are asked for too
        var pooling = hiddenRows is { Length: > 0 };
        if (!allRows && !pooling && step.LogitRows is { } rows)
        {
            (hidden, residual) = (hidden.index_select(0, rows), residual!.index_select(0, rows));  // (numLogits, hidden)
        }
        hidden = _norm.Forward(step, hidden, ref residual);
        Tensor? pooled = null;
        if (pooling)
        {
            pooled = hidden.index_select(0, tensor(hiddenRows!.Select(row => (long)row).ToArray(), device: hidden.device));  // (hiddenRows, hidden)
            pooled = pooled.to_type(ScalarType.Float32);
            // a classifier's head runs in float32, as vLLM's pooling heads do (a bf16 difference of two logits near 20
            // would be off by a step of 0.125)
            if (_score is not null) pooled = nn.functional.linear(pooled, _score.Weight.to_type(ScalarType.Float32));  // (hiddenRows, labels)
            else if (Shard.Config.ClassifierFromToken.Count > 0) pooled = ClassifierFromTokens(pooled);                // (hiddenRows, labels)
            pooled = pooled.MoveToOuterDisposeScope();
            if (!allRows && step.LogitRows is { } logitRows) hidden = hidden.index_select(0, logitRows);
        }
        return new StepOutput(LmHead(step, hidden).MoveToOuterDisposeScope(), pooled);
    }

    Tensor? _classifierHead;   // classifier_from_token's head, (labels, hidden) float32, once made

    /// classifier_from_token: makes the classifier's head from the LM-head rows of these tokens (ids in the tokenizer's
    /// vocabulary): their rows, or under from_2_way_softmax the second's minus the first's, in float32, as vLLM makes
    /// it. An untied LM head was kept for these rows only: its memory goes back (one rank only: under tensor parallelism
    /// a rank holds part of the vocabulary). Once.
    public void SetClassifierTokens(IReadOnlyList<int> tokenIds)
    {
        if (_classifierHead is not null) throw new InvalidOperationException("the classifier's tokens are already set");
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = tensor(tokenIds.Select(id => (long)id).ToArray(), device: Device);
        var rows = (_lmHead?.Weight ?? _embedTokens.Weight).index_select(0, ids).to_type(ScalarType.Float32);   // (tokens, hidden)
        if (Shard.Config.ClassifierTwoWay) rows = (rows[1] - rows[0]).unsqueeze(0);
        _classifierHead = rows.contiguous().MoveToOuterDisposeScope();
        _lmHead?.Weight.set_(empty([0, Config.HiddenSize], Dtype, Device));
    }

    /// (rows, hidden) float32 to (rows, labels): the classifier made from the LM head's rows of its tokens.
    Tensor ClassifierFromTokens(Tensor hidden) => nn.functional.linear(hidden,
        _classifierHead ?? throw new InvalidOperationException("a classifier_from_token model needs its tokens' ids (LoadedModel.SetClassifierTokens) before a step"));

    /// (rows, hidden) normed hidden states to (rows, vocab) float32 logits; without an LM head only zero rows.
    Tensor LmHead(DecoderStep step, Tensor hidden)
    {
        if (!HasLmHead)
            return hidden.size(0) == 0 ? zeros(0, Shard.Model.VocabSize, ScalarType.Float32, hidden.device)
                : throw new InvalidOperationException("the model was loaded without its LM head (the pooling runner): a step computes no logits");
        var logits = _lmHead?.Forward(step, hidden) ?? step.Linear(hidden, _embedTokens.Weight, null);  // (rows, this rank's vocab)
        logits = step.AllGatherColumns(logits);                                 // (rows, ranks x vocab rows per rank)
        if (logits.size(1) != Shard.Model.VocabSize) logits = logits.narrow(1, 0, Shard.Model.VocabSize);  // padding
        // gemma2's final soft-capping and granite's logits_scaling, in the model's dtype as transformers computes them
        if (_finalSoftcap is { } cap) logits = (logits / cap).tanh() * cap;
        if (_logitsDivisor is { } divisor) logits = logits / divisor;
        if (_logitsMultiplier is { } scale) logits = logits * scale;   // cohere's logit_scale
        return logits.to_type(ScalarType.Float32);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _classifierHead?.Dispose();
        base.Dispose(disposing);
        if (disposing) Fp8Products?.Dispose();   // after the FP8 weights that run on them
    }

    /// One layer in a dispose scope of its own, so a long prefill holds one layer's activations at a time: what the
    /// layer made and the rest of the step needs (its output, a new residual) moves out, the inputs it replaced go.
    static (Tensor Hidden, Tensor Residual) RunLayer(DecoderLayer layer, DecoderStep step, Tensor hidden, Tensor? residual)
    {
        var (input, inputResidual) = (hidden, residual);
        using (var scope = NewDisposeScope())
        {
            hidden = layer.Forward(step, hidden, ref residual).MoveToOuterDisposeScope();
            if (!ReferenceEquals(residual, inputResidual) && !ReferenceEquals(residual, input)) residual!.MoveToOuterDisposeScope();
        }
        if (!ReferenceEquals(input, residual)) input.Dispose();
        if (inputResidual is not null && !ReferenceEquals(inputResidual, residual)) inputResidual.Dispose();
        return (hidden, residual!);
    }
}

/// What a step returns: the logits of its logit rows, (rows, vocab) float32, and the final hidden states of its
/// pooled rows, (rows, hidden) float32 (StepInputs.HiddenRows; null when it has none).
public sealed record StepOutput(Tensor Logits, Tensor? Hidden);
