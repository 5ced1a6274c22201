using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// How a mixture picks each token's experts from its router's logits and weighs them (DecoderStep.ChooseExperts):
/// SoftmaxFirst, the softmax over every expert in float32, the TopK largest probabilities (with ChoiceBias added for the
/// choice alone: ernie4_5_moe), weighed by those probabilities, divided by their sum where Normalize says (mixtral,
/// qwen3_moe, ...); otherwise the TopK largest logits, weighed by their softmax (gpt-oss, granitemoe).
internal sealed record ExpertChoice(int TopK, bool SoftmaxFirst, bool Normalize = false, Tensor? ChoiceBias = null)   // ChoiceBias (1, experts) float32
{
    /// The choice in TorchSharp, as transformers computes it: chosen (numTokens, TopK) int64, largest first, and their
    /// weights rounded to dtype; in the caller's dispose scope.
    public (Tensor Chosen, Tensor Weights) Choose(Tensor logits, ScalarType dtype)
    {
        if (!SoftmaxFirst)
        {
            var (top, picked) = logits.to_type(ScalarType.Float32).topk(TopK, dim: -1);
            return (picked, top.softmax(-1).to_type(dtype));
        }
        var probabilities = logits.softmax(-1, ScalarType.Float32);                    // (numTokens, experts)
        var chosen = (ChoiceBias is null ? probabilities : probabilities.add(ChoiceBias, HeldScalars.One)).topk(TopK, dim: -1).indexes;
        var weights = probabilities.gather(1, chosen);
        return (chosen, (Normalize ? weights / weights.sum(-1, keepdim: true) : weights).to_type(dtype));
    }
}
