using Serving.Engine.Config;
using Serving.Engine.Distributed;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// What the two plain-TorchSharp steps (TorchStep over the paged pool, DenseStep for training) do alike: the
/// operations without state written with TorchOps, and the split of a fused qkv row into its heads. They differ in
/// where K/V go and how attention reads them.
internal abstract class TorchOpsStep(ModelConfig config, ICommunicator? communicator) : DecoderStep(communicator)
{
    protected ModelConfig Config { get; } = config;

    public sealed override Tensor RmsNorm(Tensor x, Tensor weight, double eps, Tensor? bias = null) =>
        TorchOps.RmsNorm(x, weight, eps, Config.NormWeight, Config.NormsCentered, bias);

    public sealed override (Tensor Normed, Tensor Residual) AddRmsNorm(Tensor x, Tensor residual, Tensor weight, double eps, Tensor? bias = null) =>
        TorchOps.AddRmsNorm(x, residual, weight, eps, Config.NormWeight, Config.NormsCentered, bias);

    public sealed override Tensor HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps) =>
        TorchOps.HeadRmsNorm(qkv, qWeight, kWeight, eps, Config.NumAttentionHeads, Config.NumKeyValueHeads, Config.HeadDim, Config.NormWeight,
            Config.NormsCentered, Config.QkNorm == QkNorm.WholeProjection);

    public sealed override Tensor SiluAndMul(Tensor gateUp) => TorchOps.SiluAndMul(gateUp);

    /// qkv (numTokens, (H + 2G) D) as its query, key and value heads.
    protected (Tensor Q, Tensor K, Tensor V) Split(Tensor qkv) =>
        TorchOps.Split(qkv, Config.NumAttentionHeads, Config.NumKeyValueHeads, Config.HeadDim);
}
