namespace Serving.Bench.Tests;

/// `serving-bench lora` on the CPU (tiny preset): every shape's base step, then its steps over each number of adapters
/// the batch can spread over.
public sealed class LoraBenchmarkTests
{
    [Fact]
    public void EveryShapeIsTimedAloneAndWithEachNumberOfAdapters()
    {
        var rows = LoraBenchmark.Measure(new LoraBenchmark.Options("tiny-gqa", "float32", "cpu", [1, 4], [32], Rank: 4, Adapters: [1, 2], Steps: 2));
        Assert.Equal([(1, 0), (1, 1), (4, 0), (4, 1), (4, 2)], rows.Select(r => (r.Batch, r.Adapters)));
        Assert.All(rows, r => Assert.True(r.Milliseconds > 0 && r.Context == 32));
    }
}
