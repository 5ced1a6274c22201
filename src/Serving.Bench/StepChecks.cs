using static TorchSharp.torch;

namespace Serving.Bench;

/// Whole-step comparison of the fused path against the plain one on the same model and pool: the logits of
/// a decode step over mixed context lengths and of a prefill step, and how many sequences' greedy tokens
/// agree. The plain path runs first; both write the same K/V to the same slots.
internal static class StepChecks
{
    static readonly int[] DecodeContexts = [1, 100, 513, 2048];
    static readonly (int Batch, int Length) PrefillShape = (3, 37);

    public static int BlocksNeeded(int blockSize) =>
        Math.Max(DecodeContexts.Sum(c => (c + blockSize - 1) / blockSize), PrefillShape.Batch * ((PrefillShape.Length + blockSize - 1) / blockSize));

    public static IEnumerable<CheckResult> Run(BenchModel bench, Random random)
    {
        var (blockSize, numBlocks, vocab) = (bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize);
        var decode = StepBatch.Build(Enumerable.Repeat(1, DecodeContexts.Length).ToArray(), DecodeContexts, blockSize, numBlocks, vocab, random);
        var prefill = StepBatch.Prefill(PrefillShape.Batch, PrefillShape.Length, blockSize, numBlocks, vocab, random);
        return [Compare("decode step", decode), Compare("prefill step", prefill)];

        CheckResult Compare(string name, Serving.Engine.Model.StepInputs batch)
        {
            using var scope = NewDisposeScope();
            bench.Model.UseFusedKernels = false;
            var expected = bench.Model.Forward(batch, bench.Cache);
            bench.Model.UseFusedKernels = true;
            var actual = bench.Model.Forward(batch, bench.Cache);
            var agree = actual.argmax(-1).eq(expected.argmax(-1)).sum().item<long>();
            var tolerance = bench.Model.Dtype == ScalarType.Float32 ? 1e-4 : 5e-2;
            return CheckResult.Compare($"{bench.Name} {name} logits (argmax agree {agree}/{batch.NumSeqs})", actual, expected, tolerance);
        }
    }
}
