using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A step's routing as the experts run it: each token's k picks (its slots) put in expert order, the order transformers
/// adds their outputs in; then every slot grouped by expert, tokens in order within each (Tokens: the token of each
/// grouped row), so that each expert multiplies a contiguous run of rows; Combine gives each token the sum of its
/// experts' outputs times their weights, added in expert order in the model's type as transformers' index_add_ adds them.
/// Three sorts (each token's picks, all slots, their inverse), a search and a gather a layer; where each group starts
/// comes to the host (one copy a layer: an expert's rows are a host-side count).
internal sealed class ExpertGroups : List<(int Expert, long Start, long Count)>
{
    ExpertGroups(Tensor tokens, Tensor rowOfSlot, Tensor weights) => (Tokens, _rowOfSlot, _weights) = (tokens, rowOfSlot, weights);

    /// (slots) int64: the token each grouped row is a slot of.
    public Tensor Tokens { get; }
    readonly Tensor _rowOfSlot;   // (numTokens x k) int64: the grouped row of each slot
    readonly Tensor _weights;     // (numTokens, k): each token's weights, its picks in expert order

    /// chosen (numTokens, k) int64, the experts of each token, and their weights (numTokens, k); tensors in the caller's
    /// dispose scope.
    public static ExpertGroups Of(Tensor chosen, Tensor weights, int experts)
    {
        var topK = chosen.shape[1];
        var (expertOfSlot, order) = chosen.sort(-1);
        var slots = expertOfSlot.view(-1);
        var (expertOfRow, slotOfRow) = slots.sort(stable: true);
        using var perToken = topK.ToScalar();   // held through the calls (HeldScalars says why)
        using var end = experts.ToScalar();
        var tokens = slotOfRow.div(perToken, RoundingMode.floor);
        var groups = new ExpertGroups(tokens, slotOfRow.argsort(), weights.gather(1, order));
        // where each expert's rows start among the sorted ones (bincount would read its input's range on the host twice)
        var starts = searchsorted(expertOfRow, arange(HeldScalars.Zero, end, HeldScalars.One, ScalarType.Int64, expertOfRow.device))
            .cpu().data<long>().ToArray();
        for (var expert = 0; expert < experts; expert++)
        {
            var count = (expert + 1 < experts ? starts[expert + 1] : slots.shape[0]) - starts[expert];
            if (count > 0) groups.Add((expert, starts[expert], count));
        }
        return groups;
    }

    /// Each group's rows through expert (its output rows, one a slot), a group at a time in a dispose scope of its own
    /// (an expert's intermediate activations freed before the next's): the outputs by grouped row, in the caller's
    /// dispose scope; null where no token was routed (a step of no tokens).
    public Tensor? Run(Func<(int Expert, long Start, long Count), Tensor> expert)
    {
        if (Count == 0) return null;
        var outputs = new List<Tensor>(Count);
        foreach (var group in this)
        {
            using var scope = NewDisposeScope();
            outputs.Add(expert(group).MoveToOuterDisposeScope());
        }
        return cat(outputs, 0);
    }

    /// grouped (slots, hidden), the experts' outputs by grouped row (Run's): (numTokens, hidden) like x, in the caller's
    /// dispose scope; zeros where grouped is null.
    public Tensor Combine(Tensor? grouped, Tensor x)
    {
        if (grouped is null) return zeros_like(x);
        var topK = _weights.shape[1];
        var bySlot = grouped.index_select(0, _rowOfSlot).view(_weights.shape[0], topK, grouped.shape[1]);
        var output = bySlot.select(1, 0) * _weights.narrow(1, 0, 1);
        for (var k = 1; k < topK; k++) output.add_(bySlot.select(1, k) * _weights.narrow(1, k, 1), HeldScalars.One);
        return output;
    }
}
