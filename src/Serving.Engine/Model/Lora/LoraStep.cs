using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Lora;

/// The adapters of one forward step and the rows (new tokens) each applies to, on the device. Every adapted
/// projection adds, for each adapter, its update to that adapter's rows only: rows of the base model, and of other
/// adapters, are untouched. Rows are gathered per adapter, so one step serves any mix of adapters and the base model.
internal sealed class LoraStep : IDisposable
{
    readonly List<(LoraAdapter Adapter, Tensor Rows)> _groups = [];
    bool _oneAdapterForAll;   // every row of the step runs with the one adapter: no gather or scatter

    /// The step's groups from each sequence's adapter (-1: none); null when no sequence of the step has one.
    public static LoraStep? For(StepInputs inputs, IReadOnlyList<LoraAdapter> adapters, Device device)
    {
        if (!inputs.HasAdapters) return null;
        var step = new LoraStep();
        foreach (var slot in inputs.Adapters.Where(a => a >= 0).Distinct())
        {
            var rows = new List<long>();
            for (var s = 0; s < inputs.NumSeqs; s++)
                if (inputs.Adapters[s] == slot)
                    for (var row = inputs.QueryStarts[s]; row < inputs.QueryStarts[s + 1]; row++) rows.Add(row);
            step._groups.Add((adapters[slot], tensor(rows.ToArray(), ScalarType.Int64, device)));
            step._oneAdapterForAll = rows.Count == inputs.NumTokens;
        }
        return step;
    }

    /// y (numTokens, out) = x (numTokens, in) W^T, plus each adapter's update of this projection on its rows.
    public Tensor Add(LoraTarget target, Tensor x, Tensor y)
    {
        if (_oneAdapterForAll)
        {
            // two products, the second adding into y: a third of the kernels of the gathered path
            if (_groups[0].Adapter.For(target) is { } only)
            {
                using var low = nn.functional.linear(x, only.A);            // (numTokens, rank)
                using var bT = only.B.t();
                y.addmm_(low, bT);
            }
            return y;
        }
        foreach (var (adapter, rows) in _groups)
        {
            if (adapter.For(target) is not { } weights) continue;
            using var rowsIn = x.index_select(0, rows);
            using var low = nn.functional.linear(rowsIn, weights.A);      // (rows, rank)
            using var update = nn.functional.linear(low, weights.B);      // (rows, out)
            y.index_add_(0, rows, update, HeldScalars.One);
        }
        return y;
    }

    public void Dispose()
    {
        foreach (var (_, rows) in _groups) rows.Dispose();
    }
}
