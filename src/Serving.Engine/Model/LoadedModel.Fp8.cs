using Serving.Engine.Cuda;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

// The decoder's projections stored in FP8 once loaded (--quantization fp8, an FP8 checkpoint's own scales), on every rank.
public sealed partial class LoadedModel
{
    /// The FP8 projections' products (CausalLM.StoreFp8), for benchmarks that compare their kernels; null until a
    /// projection was offered to FP8 (made then even where none is stored). Rank 0's.
    internal Fp8Products? Fp8Products => _model.Fp8Products;

    /// Whether the decoder's projections are stored as FP8 (QuantizeWeightsToFp8).
    public bool WeightsFp8 => _model.Fp8Weights().Count > 0;

    /// How the FP8 projections are scaled, for the start log: per tensor, per channel or per block (how many), and where
    /// cuBLASLt takes no vectors of scales, what that changes. Rank 0's.
    public string Fp8Scales
    {
        get
        {
            var weights = _model.Fp8Weights();
            var (perChannel, perBlock) = (weights.Count(w => w.Scaling == Fp8Scaling.PerChannel), weights.Count(w => w.Scaling == Fp8Scaling.PerBlock));
            if (perChannel + perBlock == 0) return "a scale per tensor";
            string On(int count) => count == weights.Count ? "" : $" on {count}";
            var parts = new List<string>();
            if (perChannel > 0)
                parts.Add($"a scale per output channel{On(perChannel)}, " + (Fp8Products?.RowScalesRefusal is { } refusal
                    ? $"inputs of more than {Fp8Products.FewRows} rows per tensor and outputs scaled per channel after the product: cuBLASLt takes no vectors of scales here ({refusal})"
                    : "inputs per token"));
            if (perBlock > 0)
                parts.Add($"a scale per {Fp8Products.ScaleBlock} x {Fp8Products.ScaleBlock} block{On(perBlock)}, inputs per token and {Fp8Products.ScaleBlock} columns");
            if (perChannel + perBlock < weights.Count) parts.Add("per tensor on the others");
            return string.Join("; ", parts);
        }
    }

    /// Why projections an FP8 checkpoint stored with scales stay in the model's type where the others are served in FP8
    /// (KeepCheckpointFp8: scales per block where cuBLASLt takes no blocks of scales, Fp8Products.BlockScalesRefusal, or
    /// blocks FP8 products do not take); null when none does. Rank 0's.
    public string? CheckpointFp8Left => _model.CheckpointFp8Left == 0 ? null
        : $"{_model.CheckpointFp8Left} projections (a layer's experts of one kind count as one) the checkpoint stored in FP8 stay in {DtypeName}: their scales are per block and " +
            (Fp8Products?.BlockScalesRefusal is { } refusal ? $"cuBLASLt takes no blocks of scales here ({refusal})"
                : $"not one scale per whole {Fp8Products.ScaleBlock} x {Fp8Products.ScaleBlock} block of the projection (a fused part of " +
                    $"fewer rows, an expert's rows not whole blocks, or a tensor-parallel rank's rows starting inside a block)");

    /// Bytes of the FP8 projections (in WeightBytes, a byte an element); 0 unless WeightsFp8. One rank's.
    public long Fp8WeightBytes => _model.Fp8WeightBytes;

    /// What WeightBytes would be with the FP8 projections in the model's type. One rank's.
    public long UnquantizedWeightBytes =>
        WeightBytes + _model.Fp8Weights().Sum(weight => weight.Values.NumberOfElements * _model.EmbeddingTable.ElementSize - weight.Bytes);

    /// --quantization fp8 on a checkpoint stored in 16 bits, as vLLM's online fp8: the decoder's projections become FP8
    /// with a scale per tensor (CausalLM.Fp8Projections) and their products run on FP8 tensor cores, their inputs
    /// quantized per step (../Cuda/Fp8Products.cs); the memory they held in the model's type goes back to the device
    /// before the KV cache is planned. No FP8 products are made where no projection has a shape they take (returns 0,
    /// WeightsFp8 stays false). On every rank. ModelLoader.Load's quantizeFp8 does this as the checkpoint loads, one
    /// projection at a time, which leaves nothing to do here. Returns how many projections a rank holds in FP8. Throws
    /// ModelLoadException where FP8 products cannot run (CPU, before sm_89, a float32 model).
    public int QuantizeWeightsToFp8() => StoreFp8("--quantization fp8", peer => peer.QuantizeWeightsToFp8(), online: true);

    /// How an FP8 checkpoint is served where FP8 products run: each projection it stored in FP8 with a scale per tensor,
    /// per output channel or per 128 x 128 block (IFp8Storable.CheckpointFp8Scales) becomes FP8 again with the checkpoint's
    /// own values, made back from the 16-bit ones it loaded as (exactly, for a bfloat16 model), and its scales (a fused
    /// projection's parts keep theirs); the rest (projections the checkpoint left in 16 bits, blocks FP8 products do
    /// not take here: CheckpointFp8Left) stay in the model's type. ModelLoader does this as the checkpoint loads where
    /// FP8 products run (one projection at a time, ../Model/Fp8ProjectionsAsLoaded), which leaves nothing to do here.
    /// Returns how many projections a rank holds in FP8 (0: none, WeightsFp8 stays false); throws as
    /// QuantizeWeightsToFp8.
    public int KeepCheckpointFp8() => StoreFp8("an FP8 checkpoint", peer => peer.KeepCheckpointFp8(), online: false);

    /// Gives each projection FP8 takes the scales its checkpoint would have stored it with, on every rank: one per output
    /// channel (its row's largest magnitude over 448), or perBlock one per 128 x 128 block (a projection not of whole
    /// blocks gets none and stays in the model's type); KeepCheckpointFp8 then serves the 16-bit weights as an FP8 checkpoint of them is served (llm-compressor's
    /// FP8-dynamic; DeepSeek's and Qwen's -FP8). For benchmarks of those paths on preset shapes (serving-bench -q
    /// fp8-channel, fp8-block).
    internal void ScaleProjectionsAsCheckpoint(bool perBlock)
    {
        _peers?.Invoke(peer =>
        {
            peer.ScaleProjectionsAsCheckpoint(perBlock);
            return true;
        });
        using var noGrad = no_grad();
        const int block = Fp8Products.ScaleBlock;
        foreach (var projection in _model.Fp8Projections())
        {
            // each part whole blocks (a block across two experts is no checkpoint's)
            if (perBlock && (projection.PartRows % block != 0 || projection.Shape[1] % block != 0)) continue;
            using var scope = NewDisposeScope();
            // it lives with the projection, whatever scope this runs in (a peer rank's job has one)
            projection.CheckpointFp8Scales = Fp8Products.CheckpointScales(projection.Weight, perBlock).cpu().DetachFromDisposeScope();
        }
    }

    // the projections FP8 products take still in the model's type (Fp8Projections) stored in FP8 on every rank: all of
    // them online, else those with their checkpoint's scales (CausalLM.StoreFp8); how many a rank holds in FP8
    int StoreFp8(string what, Func<LoadedModel, int> onPeer, bool online)
    {
        if (Fp8Products.Unsupported(Device, Dtype) is { } reason) throw new ModelLoadException($"{what}: {reason}");
        _peers?.Invoke(peer => onPeer(peer) > 0);
        foreach (var projection in _model.Fp8Projections().Where(projection => online || projection.CheckpointFp8Scales is not null))
            _model.StoreFp8(projection, online);
        return _model.Fp8Weights().Count;
    }
}
