using Serving.Engine;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// How far an FP8 KV cache moves the logits from a bfloat16 one on the same weights: Positions compared, the largest
/// and mean absolute logit difference, the fraction of positions whose argmax agrees, and whether the disagreements
/// are near-ties: the bf16 run's median gap between its two largest logits, the largest such gap at a position whose
/// argmax flipped, and how often bf16's argmax is among FP8's five largest. The logits are bfloat16 values (the LM
/// head's output type), so two tokens often share the largest one exactly (TiedTop: the fraction of positions where
/// the bf16 run's maximum is held by two or more tokens) and argmax picks the lower index among them;
/// TopSetAgreement counts a position as agreeing when the two runs' sets of tokens at their maximum share a token, and
/// WithinRoundingAgreement when FP8's choice has a bf16 logit within one bfloat16 step (of the maximum's magnitude) of
/// bf16's maximum: closer than the reference's own rounding can tell apart.
internal sealed record KVQualityResult(string Case, int Positions, double MaxAbsError, double MeanAbsError, double ArgmaxAgreement,
    long NonFiniteBf16 = 0, long NonFiniteFp8 = 0, double MedianTopGap = 0, double LargestFlippedGap = 0, double Top5Agreement = 0,
    double TiedTop = 0, double TopSetAgreement = 0, double WithinRoundingAgreement = 0);

/// The FP8 KV cache's quality on a preset or a checkpoint: every position of a 2048-token random prompt (or one as long
/// as the model takes), the last 8192 positions of 16k- and 32k-token prompts where the model takes them (prefilled in
/// chunks of 8192, the engine's largest step), and for a checkpoint given a text, every position of the text's first
/// tokens (trained weights on natural text: random weights and random tokens put many positions at a near-tie). Each
/// runs once over a bfloat16 pool and once over an FP8 pool with scales 1.0 (vLLM's default without calibration).
internal static class KVQualityChecks
{
    static readonly Scalar Tiny = 1e-30.ToScalar();
    const int BlockSize = 16, Chunk = 8192;

    public static IEnumerable<KVQualityResult> Run(string model, string dtype, Device device, string? textPath = null)
    {
        using var loaded = ModelLoader.Load(model, dtype, device);
        var maxLength = loaded.Config.MaxContextLength;
        var random = new Random(2048);
        foreach (var length in new[] { Math.Min(2048, maxLength), 16384, 32768 })
        {
            if (length > maxLength) continue;
            var prompt = Enumerable.Range(0, length).Select(_ => random.Next(loaded.Config.VocabSize)).ToArray();
            yield return Compare($"{model} {length}-token random prompt", loaded, prompt);
        }
        if (textPath is not null && Directory.Exists(model))
        {
            var tokens = TextTokenizer.Load(model).Encode(File.ReadAllText(textPath));
            var prompt = tokens.Take(Math.Min(maxLength, Chunk)).ToArray();
            yield return Compare($"{model} {prompt.Length} tokens of {Path.GetFileName(textPath)}", loaded, prompt);
        }
    }

    static KVQualityResult Compare(string name, LoadedModel model, int[] prompt)
    {
        using var scope = NewDisposeScope();
        return Compare(name, LastChunkLogits(model, KVCacheDtype.BFloat16, prompt), LastChunkLogits(model, KVCacheDtype.Fp8E4M3, prompt));
    }

    /// The figures of KVQualityResult for the logits of the same positions (n, vocab) over each pool.
    public static KVQualityResult Compare(string name, Tensor bf16, Tensor fp8)
    {
        using var scope = NewDisposeScope();
        var (reference, other) = (bf16.to_type(ScalarType.Float64), fp8.to_type(ScalarType.Float64));
        var difference = (other - reference).abs();
        var (expected, choice) = (reference.argmax(-1), other.argmax(-1));
        var agrees = choice.eq(expected);
        var top2 = reference.topk(2, -1).values;
        var best = top2.select(1, 0);                                                    // (n) bf16's largest logit
        var gap = best - top2.select(1, 1);                                              // (n) bf16's top-1 lead
        var flippedGaps = gap.masked_select(~agrees);
        var top5 = other.topk((int)Math.Min(5, other.size(1)), -1).indexes.eq(expected.unsqueeze(1)).any(1);
        var referenceTop = reference.eq(best.unsqueeze(1));                              // (n, vocab) tokens at bf16's maximum
        var otherTop = other.eq(other.amax([-1L], keepdim: true));
        // a bfloat16 step at that magnitude
        var step = pow(2.0, HeldScalars.Subtract(best.abs().clamp_min(Tiny).log2().floor(), 7));
        var withinRounding = reference.gather(1, choice.unsqueeze(1)).squeeze(1).ge(best - step);
        long NonFinite(Tensor t) => (~t.isfinite()).sum().item<long>();
        static double Fraction(Tensor mask) => mask.to_type(ScalarType.Float64).mean().item<double>();
        return new KVQualityResult(name, (int)bf16.size(0), difference.max().item<double>(), difference.mean().item<double>(),
            Fraction(agrees), NonFinite(bf16), NonFinite(fp8),
            gap.median().item<double>(), flippedGaps.numel() == 0 ? 0 : flippedGaps.max().item<double>(),
            Fraction(top5), TiedTop: Fraction(referenceTop.sum(-1).gt(Serving.Engine.HeldScalars.One)), TopSetAgreement: Fraction((referenceTop & otherTop).any(-1)),
            WithinRoundingAgreement: Fraction(withinRounding));
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
