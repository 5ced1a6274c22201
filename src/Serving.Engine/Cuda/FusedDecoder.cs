using Serving.Engine.Config;
using Serving.Engine.KVCache;
using TorchSharp;
using Serving.Engine.Model;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Serving.Engine.Cuda;

/// The Llama decoder forward on CUDA with the fused kernels. Per layer it issues four matrix products
/// through TorchSharp and five or six kernel launches:
///
///   add+norm → qkv linear → rope+KV write → paged attention (+ merge) → o linear → add+norm → gate_up linear
///   → silu·up → down linear
///
/// so a decode step's host cost stays far below its GPU time. Decode steps (one query token per sequence)
/// use the paged decode kernel; prefill steps use <see cref="PrefillAttention"/>. The residual stream is
/// carried in place by the add+norm kernels: h = x + attn(norm(x)); out = h + ffn(norm(h)).
/// Owns its compiled kernels and rope table; the weights belong to the model.
internal sealed class FusedDecoder : IDisposable
{
    private readonly FusedKernels _kernels;
    private readonly FusedModelWeights _weights;
    private readonly RopeTable _rope;

    public FusedDecoder(FusedKernels kernels, FusedModelWeights weights, RopeTable rope) =>
        (_kernels, _weights, _rope) = (kernels, weights, rope);

    /// The fused path for a model, or null where it does not apply (not CUDA, float16, or a shape the kernels
    /// do not take): the plain TorchSharp path runs there. Compiles the kernels for this shape (about a second).
    public static FusedDecoder? TryCreate(nn.Module model, ModelConfig config, ScalarType dtype, Device device)
    {
        if (device.type != DeviceType.CUDA || !FusedKernels.Supports(dtype, config))
        {
            return null;
        }

        var kernels = new FusedKernels(CudaDevice.Open(Math.Max(device.index, 0)), dtype, config.HeadDim, config.NumAttentionHeads, config.NumKeyValueHeads);
        var weights = FusedModelWeights.From(model, config.NumHiddenLayers, config.RmsNormEps);
        var rope = new RopeTable(config.Rope.InverseFrequencies(config.HeadDim), config.MaxContextLength, device);
        return new FusedDecoder(kernels, weights, rope);
    }

    public FusedKernels Kernels => _kernels;
    public FusedModelWeights Weights => _weights;

    /// Logits of each sequence's last new token, (numSeqs, vocab) float32. The step's metadata goes up in one
    /// copy; the returned tensor belongs to the caller's dispose scope, intermediates are released as soon as
    /// their consumer is queued.
    public Tensor Forward(BatchInputs batch, PagedKVCache cache)
    {
        using var scope = NewDisposeScope();
        using var inputs = FusedStepInputs.Upload(batch, cache.BlockSize, _weights.Embedding.device);
        return Forward(inputs, cache).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _kernels.Dispose();
        _rope.Dispose();
    }

    private Tensor Forward(FusedStepInputs inputs, PagedKVCache cache)
    {
        _kernels.Device.MakeCurrent();
        var plan = inputs.IsDecode
            ? _kernels.PlanDecode(inputs.NumSeqs, inputs.HostContextLengths.Max())
            : null;
        using var workspace = empty(plan?.WorkspaceElements(_kernels.NumHeads, _kernels.HeadDim) ?? 0, ScalarType.Float32, _weights.Embedding.device);
        using var residual = _weights.Embedding.index_select(0, inputs.TokenIds);   // (N, hidden)
        using var normed = empty_like(residual);
        Tensor? mlpOut = null;
        for (var i = 0; i < _weights.Layers.Count; i++)
        {
            var layer = _weights.Layers[i];
            Norm(residual, mlpOut, layer.InputNorm, normed);
            mlpOut?.Dispose();
            using var attnOut = Attention(normed, layer, cache, i, inputs, plan, workspace);
            using var o = linear(attnOut, layer.OProj, layer.OBias);                     // (N, hidden)
            _kernels.AddRmsNorm(residual, o, layer.PostAttentionNorm, normed, _weights.RmsNormEps);
            mlpOut = Mlp(normed, layer);
        }

        Norm(residual, mlpOut, _weights.FinalNorm, normed);
        mlpOut?.Dispose();
        using var last = inputs.IsDecode ? normed.alias() : LastTokens(normed, inputs);
        return linear(last, _weights.LmHead);                                           // (S, vocab)
    }

    private void Norm(Tensor residual, Tensor? add, Tensor weight, Tensor output)
    {
        if (add is null)
        {
            _kernels.RmsNorm(residual, weight, output, _weights.RmsNormEps);
        }
        else
        {
            _kernels.AddRmsNorm(residual, add, weight, output, _weights.RmsNormEps);
        }
    }

    // (N, hidden) → (N, numHeads headDim), writing this step's K/V into the pool on the way.
    private Tensor Attention(Tensor normed, FusedLayerWeights layer, PagedKVCache cache, int layerIndex, FusedStepInputs inputs,
        DecodeAttentionPlan? plan, Tensor workspace)
    {
        var (keys, values) = (cache.Keys(layerIndex), cache.Values(layerIndex));
        using var qkv = linear(normed, layer.QkvProj, layer.QkvBias);                   // (N, (H + 2G) D)
        _kernels.RopeAndWriteKV(qkv, inputs.Positions, inputs.Slots, _rope, keys, values);
        if (plan is null)
        {
            return PrefillAttention.Run(qkv, keys, values, inputs, _kernels.NumHeads, _kernels.NumKVHeads, _kernels.HeadDim);
        }

        var output = empty(inputs.NumTokens, _kernels.NumHeads * _kernels.HeadDim, qkv.dtype, qkv.device);
        // the query is the first numHeads*headDim columns of each qkv row: the kernel reads it at qkv's row stride
        _kernels.PagedDecodeAttention(qkv, keys, values, inputs.BlockTables, inputs.ContextLengths, plan, output, workspace);
        return output;
    }

    private Tensor Mlp(Tensor normed, FusedLayerWeights layer)
    {
        using var gateUp = linear(normed, layer.GateUpProj, layer.GateUpBias);                            // (N, 2 ffn)
        using var activated = empty(gateUp.size(0), gateUp.size(1) / 2, gateUp.dtype, gateUp.device);
        _kernels.SiluMul(gateUp, activated);
        return linear(activated, layer.DownProj, layer.DownBias);                                       // (N, hidden)
    }

    private static Tensor LastTokens(Tensor hidden, FusedStepInputs inputs)
    {
        var last = new long[inputs.NumSeqs];
        var end = 0L;
        for (var s = 0; s < inputs.NumSeqs; s++)
        {
            end += inputs.QueryLengths[s];
            last[s] = end - 1;
        }

        using var index = tensor(last, device: hidden.device);
        return hidden.index_select(0, index);                                           // (S, hidden)
    }
}
