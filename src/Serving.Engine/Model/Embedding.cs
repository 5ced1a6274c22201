using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// y = weight[ids]: the token embedding table.
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] readonly Parameter _weight;  // (vocab, hidden)

    public Embedding(long vocabSize, long hidden, ScalarType dtype, Device device) : base("Embedding")
    {
        _weight = ModelParameters.Empty([vocabSize, hidden], dtype, device);
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    // (numTokens) int64 -> (numTokens, hidden)
    public override Tensor forward(Tensor ids) => _weight.index_select(0, ids);
}
