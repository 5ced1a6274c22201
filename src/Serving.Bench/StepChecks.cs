using Serving.Engine.Cuda;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Whole-step comparison of the fused decoder against the plain one on the same weights and pool: the
/// logits of a decode step over mixed context lengths and of a prefill step, and how many sequences' greedy
/// tokens agree. The plain path runs first and both write the same K/V to the same slots.
internal static class StepChecks
{
    private static readonly int[] DecodeContexts = [1, 100, 513, 2048];
    private static readonly (int Batch, int Length) PrefillShape = (3, 37);

    public static int BlocksNeeded(int blockSize) =>
        Math.Max(DecodeContexts.Sum(c => (c + blockSize - 1) / blockSize), PrefillShape.Batch * ((PrefillShape.Length + blockSize - 1) / blockSize));

    public static IEnumerable<CheckResult> Run(RandomModel model, FusedDecoder fused, PlainDecoder plain, Device device, Random random)
    {
        var vocab = model.Preset.VocabSize;
        var decode = StepBatch.Build(Enumerable.Repeat(1, DecodeContexts.Length).ToArray(), DecodeContexts, model.BlockSize, model.NumBlocks, vocab, random);
        var prefill = StepBatch.Prefill(PrefillShape.Batch, PrefillShape.Length, model.BlockSize, model.NumBlocks, vocab, random);
        return [Compare("decode step", decode), Compare("prefill step", prefill)];

        CheckResult Compare(string name, StepBatch batch)
        {
            using var scope = NewDisposeScope();
            var expected = plain.Forward(batch);
            using var inputs = FusedStepInputs.Upload(batch.TokenIds, batch.Positions, batch.QueryLengths, batch.ContextLengths, batch.SlotMapping, batch.BlockTables, model.BlockSize, device);
            var actual = fused.Forward(inputs);
            var agree = actual.argmax(-1).eq(expected.argmax(-1)).sum().item<long>();
            var tolerance = actual.dtype == ScalarType.Float32 ? 1e-4 : 5e-2;
            return CheckResult.Compare($"{model.Preset.Name} {name} logits (argmax agree {agree}/{batch.QueryLengths.Length})", actual, expected, tolerance);
        }
    }
}
