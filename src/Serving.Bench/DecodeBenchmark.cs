using Serving.Engine.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Times decode and prefill steps of one random model through the fused path and the plain path. A timed
/// decode step is what the engine does per step: upload the metadata, run the forward, take the argmax and
/// read the sampled tokens back to the host (the step's one synchronization).
internal sealed class DecodeBenchmark(RandomModel model, FusedDecoder? fused, PlainDecoder plain, DeviceCeilings ceilings, Device device, int steps)
{
    private readonly bool _cuda = device.type == DeviceType.CUDA;

    public DecodeResult Decode(string path, int batch, int context, Random random)
    {
        var step = StepBatch.Decode(batch, context, model.BlockSize, model.NumBlocks, model.Preset.VocabSize, random);
        var ms = Timing.MedianMilliseconds(() => RunStep(path, step), 2, steps, _cuda);
        var weightBytes = model.Weights.DecodeBytes(batch);
        var kvBytes = (long)batch * context * model.Preset.KVBytesPerToken((int)model.Weights.Embedding.ElementSize);
        var floorMs = (weightBytes + kvBytes) / ceilings.BandwidthBytesPerSecond * 1000;
        var attentionMs = path == "fused" ? AttentionMilliseconds(step) : (double?)null;
        return new DecodeResult(model.Preset.Name, path, batch, context, ms, batch / (ms / 1000), weightBytes, kvBytes,
            floorMs, floorMs / ms, attentionMs, attentionMs / ms);
    }

    public PrefillResult Prefill(string path, int batch, int promptLength, Random random)
    {
        var step = StepBatch.Prefill(batch, promptLength, model.BlockSize, model.NumBlocks, model.Preset.VocabSize, random);
        var ms = Timing.MedianMilliseconds(() => RunStep(path, step), 1, Math.Max(3, steps / 4), _cuda);
        var tokens = (long)batch * promptLength;
        var flops = PrefillFlops(batch, promptLength);
        var rate = flops / (ms / 1000);
        return new PrefillResult(model.Preset.Name, path, batch, promptLength, ms, tokens / (ms / 1000), rate / 1e12, rate / ceilings.MatmulFlopsPerSecond);
    }

    public void RunStep(string path, StepBatch step)
    {
        using var scope = NewDisposeScope();
        var logits = path == "fused" ? FusedForward(step) : plain.Forward(step);
        _ = logits.argmax(-1).cpu().data<long>().ToArray();
    }

    public Tensor FusedForward(StepBatch step)
    {
        using var inputs = FusedStepInputs.Upload(step.TokenIds, step.Positions, step.QueryLengths, step.ContextLengths, step.SlotMapping, step.BlockTables, model.BlockSize, device);
        return fused!.Forward(inputs);
    }

    // The attention kernels of all layers alone, on the step's metadata: the attention share of the step.
    private double AttentionMilliseconds(StepBatch step)
    {
        using var scope = NewDisposeScope();
        var k = fused!.Kernels;
        using var inputs = FusedStepInputs.Upload(step.TokenIds, step.Positions, step.QueryLengths, step.ContextLengths, step.SlotMapping, step.BlockTables, model.BlockSize, device);
        var plan = k.PlanDecode(inputs.NumSeqs, step.ContextLengths.Max());
        var workspace = empty(plan.WorkspaceElements(k.NumHeads, k.HeadDim), ScalarType.Float32, device);
        var qkv = randn(inputs.NumSeqs, (k.NumHeads + 2 * k.NumKVHeads) * k.HeadDim, dtype: k.Dtype, device: device);
        var output = empty(inputs.NumSeqs, k.NumHeads * k.HeadDim, dtype: k.Dtype, device: device);
        return Timing.MedianMilliseconds(() =>
        {
            foreach (var cache in model.Cache)
            {
                k.PagedDecodeAttention(qkv, cache.Keys, cache.Values, inputs.BlockTables, inputs.ContextLengths, plan, output, workspace);
            }
        }, 2, steps, _cuda);
    }

    // 2 FLOPs per weight per token in every linear, plus causal attention (QK and PV, half the square).
    private double PrefillFlops(int batch, int length)
    {
        var p = model.Preset;
        var perTokenLinear = 2.0 * p.NumLayers * p.HiddenSize * ((p.NumHeads + 2 * p.NumKVHeads) * p.HeadDim + p.NumHeads * p.HeadDim + 3.0 * p.IntermediateSize);
        var attention = 2.0 * 2 * p.NumLayers * p.NumHeads * p.HeadDim * (length * (length + 1) / 2.0);
        return batch * (perTokenLinear * length + attention) + 2.0 * batch * p.HiddenSize * p.VocabSize;
    }
}
