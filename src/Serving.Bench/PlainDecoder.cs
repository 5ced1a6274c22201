using Serving.Engine.Cuda;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Serving.Bench;

/// The same decoder written the obvious way with TorchSharp ops (RMSNorm in ops, RoPE with rotate-half,
/// K/V written with index_copy_, attention by SDPA over K/V gathered from the pool with queries grouped per
/// KV head). It is the "before" of the benchmark and the reference the fused path is checked against.
internal sealed class PlainDecoder(RandomModel model)
{
    private readonly int _heads = model.Preset.NumHeads, _kvHeads = model.Preset.NumKVHeads, _headDim = model.Preset.HeadDim;

    /// Logits of each sequence's last token, (numSeqs, vocab).
    public Tensor Forward(StepBatch batch)
    {
        var device = model.Weights.Embedding.device;
        using var scope = NewDisposeScope();
        var tokens = tensor(batch.TokenIds, dtype: ScalarType.Int64, device: device);
        var positions = tensor(batch.Positions, dtype: ScalarType.Int64, device: device);
        var slots = tensor(batch.SlotMapping, dtype: ScalarType.Int64, device: device);
        var (contextSlots, contextMask) = ContextSlots(batch, device);
        var h = model.Weights.Embedding.index_select(0, tokens);                      // (N, hidden)
        for (var i = 0; i < model.Weights.Layers.Count; i++)
        {
            h = Layer(h, i, batch, positions, slots, contextSlots, contextMask);
        }

        var last = tensor(LastTokenIndices(batch), device: device);
        return linear(RmsNorm(h, model.Weights.FinalNorm).index_select(0, last), model.Weights.LmHead).MoveToOuterDisposeScope();
    }

    // One scope per layer: the gathered K/V copies of a layer are freed before the next layer gathers its own.
    private Tensor Layer(Tensor h, int i, StepBatch batch, Tensor positions, Tensor slots, Tensor contextSlots, Tensor contextMask)
    {
        using var scope = NewDisposeScope();
        var layer = model.Weights.Layers[i];
        h = h + Attention(RmsNorm(h, layer.InputNorm), layer, model.Cache[i], batch, positions, slots, contextSlots, contextMask);
        var gateUp = linear(RmsNorm(h, layer.PostAttentionNorm), layer.GateUpProj).chunk(2, -1);
        return (h + linear(silu(gateUp[0]) * gateUp[1], layer.DownProj)).MoveToOuterDisposeScope();
    }

    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        var x32 = x.to(ScalarType.Float32);
        var normalized = x32 * rsqrt(x32.pow(2).mean([-1], keepdim: true) + model.Weights.RmsNormEps);
        return weight * normalized.to(x.dtype);
    }

    private Tensor Attention(Tensor x, FusedLayerWeights layer, LayerKVCache cache, StepBatch batch,
        Tensor positions, Tensor slots, Tensor contextSlots, Tensor contextMask)
    {
        var n = x.size(0);
        var qkv = linear(x, layer.QkvProj).split([_heads * _headDim, _kvHeads * _headDim, _kvHeads * _headDim], -1);
        var q = Rope(qkv[0].view(n, _heads, _headDim), positions);
        var k = Rope(qkv[1].view(n, _kvHeads, _headDim), positions);
        cache.Keys.view(-1, _kvHeads, _headDim).index_copy_(0, slots, k);
        cache.Values.view(-1, _kvHeads, _headDim).index_copy_(0, slots, qkv[2].view(n, _kvHeads, _headDim));
        return GroupedAttention(q, cache, batch, contextSlots, contextMask);
    }

    private Tensor Rope(Tensor x, Tensor positions)                                    // x (N, heads, D)
    {
        var cos = model.Rope.Cos.index_select(0, positions).to(x.dtype).repeat(1, 2).unsqueeze(1);   // (N, 1, D)
        var sin = model.Rope.Sin.index_select(0, positions).to(x.dtype).repeat(1, 2).unsqueeze(1);
        var halves = x.chunk(2, -1);
        return x * cos + cat([-halves[1], halves[0]], -1) * sin;
    }

    // Queries padded per sequence to the longest query, keys to the longest context; (N, H D) out.
    private Tensor GroupedAttention(Tensor q, LayerKVCache cache, StepBatch batch, Tensor contextSlots, Tensor contextMask)
    {
        var (s, cMax, group) = (batch.QueryLengths.Length, contextSlots.size(1), _heads / _kvHeads);
        var k = cache.Keys.view(-1, _kvHeads, _headDim).index_select(0, contextSlots.flatten()).view(s, cMax, _kvHeads, _headDim).permute(0, 2, 1, 3);
        var v = cache.Values.view(-1, _kvHeads, _headDim).index_select(0, contextSlots.flatten()).view(s, cMax, _kvHeads, _headDim).permute(0, 2, 1, 3);
        if (batch.QueryLengths.All(l => l == 1))
        {
            var grouped = q.view(s, _kvHeads, group, _headDim);                        // (S, G, group, D) against (S, G, C, D)
            return scaled_dot_product_attention(grouped, k, v, contextMask.view(s, 1, 1, cMax)).reshape(s, _heads * _headDim);
        }

        var outputs = new List<Tensor>();
        var start = 0;
        for (var i = 0; i < s; i++)
        {
            var lq = batch.QueryLengths[i];
            var qi = q.narrow(0, start, lq).view(lq, _kvHeads, group, _headDim).permute(1, 2, 0, 3).reshape(1, _kvHeads, group * lq, _headDim);
            var mask = Causal(lq, batch.ContextLengths[i], (int)cMax, group, q.device) & contextMask[i].unsqueeze(0);
            var o = scaled_dot_product_attention(qi, k.narrow(0, i, 1), v.narrow(0, i, 1), mask);
            outputs.Add(o.view(_kvHeads, group, lq, _headDim).permute(2, 0, 1, 3).reshape(lq, _heads * _headDim));
            start += lq;
        }

        return cat(outputs, 0);
    }

    private static Tensor Causal(int queryLength, int contextLength, int cMax, int group, Device device) =>
        arange(cMax, device: device).unsqueeze(0) <= arange(contextLength - queryLength, contextLength, device: device).repeat(group).unsqueeze(1);

    // (S, maxContext) pool slot of every context token, padded with slot 0 and masked out.
    private (Tensor Slots, Tensor Mask) ContextSlots(StepBatch batch, Device device)
    {
        var cMax = batch.ContextLengths.Max();
        var slots = new long[batch.ContextLengths.Length * cMax];
        var mask = new bool[slots.Length];
        for (var s = 0; s < batch.ContextLengths.Length; s++)
        {
            for (var t = 0; t < batch.ContextLengths[s]; t++)
            {
                slots[s * cMax + t] = batch.BlockTables[s][t / model.BlockSize] * model.BlockSize + t % model.BlockSize;
                mask[s * cMax + t] = true;
            }
        }

        return (tensor(slots, device: device).view(-1, cMax), tensor(mask, device: device).view(-1, cMax));
    }

    private static long[] LastTokenIndices(StepBatch batch)
    {
        var end = 0L;
        return batch.QueryLengths.Select(l => (end += l) - 1).ToArray();
    }
}
