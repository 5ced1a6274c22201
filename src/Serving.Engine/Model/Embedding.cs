using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// y = weight[ids]: the token embedding table, or under tensor parallelism one rank's rows of it (ids vocabStart ..
/// vocabStart + rows - 1); ids outside them give zero rows, and the ranks' lookups summed (DecoderStep.AllReduce)
/// give every id its row.
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (vocab or this rank's rows, hidden)
    readonly long _vocabStart;
    readonly bool _sharded;

    public Embedding(long vocabSize, long hidden, ScalarType dtype, Device device, long vocabStart = 0, bool sharded = false)
        : base("Embedding")
    {
        _weight = ModelParameters.Empty([vocabSize, hidden], dtype, device);
        (_vocabStart, _sharded) = (vocabStart, sharded);
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    // (numTokens) int64 -> (numTokens, hidden)
    public override Tensor forward(Tensor ids)
    {
        if (!_sharded) return _weight.index_select(0, ids);
        var local = HeldScalars.Subtract(ids.to_type(ScalarType.Int64), _vocabStart);      // (numTokens)
        using var rowCount = _weight.size(0).ToScalar();
        var elsewhere = local.lt(HeldScalars.Zero).logical_or_(local.ge(rowCount));        // ids another rank holds
        var rows = _weight.index_select(0, local.masked_fill(elsewhere, HeldScalars.Zero));
        return rows.masked_fill_(elsewhere.unsqueeze(1), HeldScalars.Zero);
    }
}
