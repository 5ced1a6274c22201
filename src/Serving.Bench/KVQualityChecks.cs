using Serving.Engine.KVCache;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// How far an FP8 KV cache moves the logits from a bfloat16 one on the same weights: Positions compared, the largest
/// and mean absolute logit difference, and the fraction of positions whose argmax agrees.
internal sealed record KVQualityResult(string Case, int Positions, double MaxAbsError, double MeanAbsError, double ArgmaxAgreement,
    long NonFiniteBf16 = 0, long NonFiniteFp8 = 0);

/// The FP8 KV cache's quality on a preset (random weights): every position of a 2048-token random prompt, and the
/// last 8192 positions of a 32k-token prompt (prefilled in chunks of 8192, the engine's largest step), each run
/// once over a bfloat16 pool and once over an FP8 pool with scales 1.0 (vLLM's default without calibration).
internal static class KVQualityChecks
{
    const int BlockSize = 16, Chunk = 8192;

    public static IEnumerable<KVQualityResult> Run(string preset, string dtype, Device device)
    {
        using var model = ModelLoader.LoadPreset(preset, dtype, device);
        var random = new Random(2048);
        foreach (var length in new[] { 2048, 16384, 32768 })
        {
            if (length > model.Config.MaxContextLength) continue;
            var prompt = Enumerable.Range(0, length).Select(_ => random.Next(model.Config.VocabSize)).ToArray();
            using var scope = NewDisposeScope();
            var bf16 = LastChunkLogits(model, KVCacheDtype.BFloat16, prompt);
            var fp8 = LastChunkLogits(model, KVCacheDtype.Fp8E4M3, prompt);
            var difference = (fp8 - bf16).abs();
            var agree = fp8.argmax(-1).eq(bf16.argmax(-1)).to_type(ScalarType.Float64).mean().item<double>();
            long NonFinite(Tensor t) => (~t.isfinite()).sum().item<long>();
            yield return new KVQualityResult($"{preset} {length}-token prompt", (int)bf16.size(0),
                difference.max().item<float>(), difference.mean().item<float>(), agree, NonFinite(bf16), NonFinite(fp8));
        }
    }

    // prefill the prompt in chunks into a pool of this dtype; logits of every position of the last chunk, (n, vocab)
    static Tensor LastChunkLogits(LoadedModel model, KVCacheDtype dtype, int[] prompt)
    {
        var blocks = Enumerable.Range(0, SlotMapping.BlocksFor(prompt.Length, BlockSize)).ToArray();
        using var cache = model.CreateKVCache(blocks.Length, BlockSize, dtype);
        Tensor? logits = null;
        for (var start = 0; start < prompt.Length; start += Chunk)
        {
            logits?.Dispose();
            var count = Math.Min(Chunk, prompt.Length - start);
            var step = StepInputs.Build([new StepSequence(prompt, start, count, blocks)], BlockSize);
            logits = start + count < prompt.Length ? model.Forward(step, cache) : model.ForwardAllLogits(step, cache);
        }
        return logits!;
    }
}
