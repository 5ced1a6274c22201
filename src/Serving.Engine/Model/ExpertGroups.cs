using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A step's routing as the experts run it: each token's k picks (its slots) put in expert order, the order transformers
/// adds their outputs in; then every slot grouped by expert, tokens in order within each (Tokens: the token of each
/// grouped row), so that each expert multiplies a contiguous run of rows; Combine gives each token the sum of its
/// experts' outputs times their weights, added in expert order in the model's type as transformers' index_add_ adds them.
/// Of and Combine are TorchSharp's (three sorts, a search and a gather; a product and a sum a pick); the fused backend
/// lays the same tensors out in one kernel each (DecoderStep.GroupExperts, CombineExperts). All stay on the device
/// (Starts); the groups on the host (OnHost, one copy a layer) only for products that need an expert's rows as a
/// host-side count.
internal sealed class ExpertGroups
{
    IReadOnlyList<(int Expert, long Start, long Count)>? _onHost;
    Tensor? _active;

    /// tokens, expertOfRow, starts as the properties say; rowOfSlot (numTokens x k) int64, the grouped row of each slot;
    /// weights (numTokens, k), each token's weights with its picks in expert order; active as Active says, or null
    /// (made from starts when asked).
    public ExpertGroups(Tensor tokens, Tensor expertOfRow, Tensor starts, Tensor rowOfSlot, Tensor weights, Tensor? active = null) =>
        (Tokens, ExpertOfRow, Starts, RowOfSlot, Weights, _active) = (tokens, expertOfRow, starts, rowOfSlot, weights, active);

    /// (slots) int64: the token each grouped row is a slot of.
    public Tensor Tokens { get; }
    /// (slots) int64: the expert of each grouped row (ascending).
    public Tensor ExpertOfRow { get; }
    /// (experts + 1) int64 on the device: expert e's rows are Starts[e] .. Starts[e + 1] (the last is the slots' count).
    public Tensor Starts { get; }
    /// (numTokens x k) int64: the grouped row of each slot (token t's pick j in expert order at t x k + j).
    public Tensor RowOfSlot { get; }
    /// (numTokens, k): each token's weights, its picks in expert order.
    public Tensor Weights { get; }

    /// chosen (numTokens, k) int64, the experts of each token, and their weights (numTokens, k); tensors in the caller's
    /// dispose scope.
    public static ExpertGroups Of(Tensor chosen, Tensor weights, int experts)
    {
        var topK = chosen.shape[1];
        var (expertOfSlot, order) = chosen.sort(-1);
        var slots = expertOfSlot.view(-1);
        var (expertOfRow, slotOfRow) = slots.sort(stable: true);
        using var perToken = topK.ToScalar();   // held through the calls (HeldScalars says why)
        using var end = (experts + 1).ToScalar();
        var tokens = slotOfRow.div(perToken, RoundingMode.floor);
        // where each expert's rows start among the sorted ones (bincount would read its input's range on the host twice)
        var starts = searchsorted(expertOfRow, arange(HeldScalars.Zero, end, HeldScalars.One, ScalarType.Int64, expertOfRow.device));
        return new ExpertGroups(tokens, expertOfRow, starts, slotOfRow.argsort(), weights.gather(1, order));
    }

    /// (experts) int64 on the device: the experts some slot chose in order, then the others in order (the expert
    /// products launch blocks for the first min(experts, slots) of them alone). Made from Starts on first use where
    /// the groups were TorchSharp's, in the dispose scope then current.
    public Tensor Active => _active ??= MakeActive();

    Tensor MakeActive()
    {
        var experts = Starts.size(0) - 1;
        var empty = Starts.narrow(0, 1, experts).eq(Starts.narrow(0, 0, experts)).to_type(ScalarType.Int64);
        return empty.sort(stable: true).Indices;
    }

    /// The experts some slot chose, where their rows start and how many: Starts copied to the host (once).
    public IReadOnlyList<(int Expert, long Start, long Count)> OnHost => _onHost ??= ReadStarts();

    List<(int Expert, long Start, long Count)> ReadStarts()
    {
        var starts = Starts.cpu().data<long>().ToArray();
        var groups = new List<(int Expert, long Start, long Count)>();
        for (var expert = 0; expert + 1 < starts.Length; expert++)
            if (starts[expert + 1] > starts[expert]) groups.Add((expert, starts[expert], starts[expert + 1] - starts[expert]));
        return groups;
    }

    /// Each group's rows through expert (its output rows, one a slot), a group at a time in a dispose scope of its own
    /// (an expert's intermediate activations freed before the next's): the outputs by grouped row, in the caller's
    /// dispose scope; null where no token was routed (a step of no tokens).
    public Tensor? Run(Func<(int Expert, long Start, long Count), Tensor> expert)
    {
        if (OnHost.Count == 0) return null;
        var outputs = new List<Tensor>(OnHost.Count);
        foreach (var group in OnHost)
        {
            using var scope = NewDisposeScope();
            outputs.Add(expert(group).MoveToOuterDisposeScope());
        }
        return cat(outputs, 0);
    }

    /// grouped (slots, hidden), the experts' outputs by grouped row (Run's), each with its expert's row of bias
    /// (experts, hidden) added first where given: (numTokens, hidden) like x, in the caller's dispose scope; zeros where
    /// grouped is null.
    public Tensor Combine(Tensor? grouped, Tensor x, Tensor? bias = null)
    {
        if (grouped is null) return zeros_like(x);
        if (bias is not null) grouped = grouped.add(bias.index_select(0, ExpertOfRow), HeldScalars.One);
        var topK = Weights.shape[1];
        var bySlot = grouped.index_select(0, RowOfSlot).view(Weights.shape[0], topK, grouped.shape[1]);
        var output = bySlot.select(1, 0) * Weights.narrow(1, 0, 1);
        for (var k = 1; k < topK; k++) output.add_(bySlot.select(1, k) * Weights.narrow(1, k, 1), HeldScalars.One);
        return output;
    }
}
