using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Bench;

/// One prompt of a reference checkpoint run on the device in a weights dtype over a KV cache dtype: the largest logit
/// error of the prompt's last position against transformers' float32 reference, how many of its 16 greedy tokens
/// agree, and (KV caches other than the model's own) the largest and mean logit difference from the bfloat16-KV run.
internal sealed record FixtureResult(string Model, string Dtype, string KVCacheDtype, bool FusedKernels, int Prompt, double MaxLogitError,
    int GreedyMatches, double? MaxVsBf16KV = null, double? MeanVsBf16KV = null);

/// Runs the reference checkpoints of ../shared/fixtures (transformers' outputs in reference.json) through the
/// engine model on the device: float32 must match the reference as on CPU; bfloat16 weights, and float32 weights
/// over a bfloat16 or an FP8 KV cache, are reported as the count of leading greedy tokens that agree (at least 8 is
/// the bar, or a reference near-tie) and, for FP8, how far its logits are from the bfloat16-KV run's.
internal static class FixtureChecks
{
    static readonly (string Weights, KVCacheDtype? Cache)[] Variants =
        [("float32", null), ("float32", KVCacheDtype.BFloat16), ("float32", KVCacheDtype.Fp8E4M3), ("bfloat16", null)];

    public static IEnumerable<FixtureResult> Run(string fixturesRoot, Device device, int tensorParallelSize = 1)
    {
        foreach (var dir in Directory.GetDirectories(fixturesRoot).Where(d => File.Exists(Path.Combine(d, "config.json"))).Order())
        {
            var reference = Fixtures.ReferenceIn(dir);
            var bf16KVLogits = new float[reference.Prompts.Count][];
            foreach (var (weights, cacheDtype) in Variants)
            {
                using var model = ModelLoader.Load(dir, weights, device, tensorParallelSize: tensorParallelSize);
                if (cacheDtype is not null && !model.CanRun(cacheDtype)) continue;
                using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16, cacheDtype);
                for (var i = 0; i < reference.Prompts.Count; i++)
                {
                    var name = Path.GetFileName(dir) + (tensorParallelSize == 1 ? "" : $" tp{tensorParallelSize}");
                    var (result, logits) = RunPrompt(name, model, cache, reference.Prompts[i], i);
                    if (cache.Dtype == KVCacheDtype.BFloat16) bf16KVLogits[i] = logits;
                    if (cache.Dtype.IsFp8 && bf16KVLogits[i] is { } baseline)
                    {
                        var differences = logits.Zip(baseline, (a, b) => Math.Abs((double)a - b)).ToArray();
                        result = result with { MaxVsBf16KV = differences.Max(), MeanVsBf16KV = differences.Average() };
                    }
                    yield return result;
                }
            }
        }
    }

    // Prefill the prompt in one step, then decode 16 tokens one step at a time (the decode kernel's path).
    static (FixtureResult Result, float[] LastLogits) RunPrompt(string name, LoadedModel model, PagedKVCache cache, FixturePrompt prompt, int index)
    {
        var tokens = prompt.InputIds.ToList();
        var blocks = Enumerable.Range(0, SlotMapping.BlocksFor(tokens.Count + 16, cache.BlockSize)).Select(b => (b * 7) % cache.NumBlocks).ToArray();
        var logits = Step(model, cache, tokens, blocks, computed: 0);
        var lastLogits = logits;
        var maxError = logits.Zip(prompt.LastLogits, (a, b) => Math.Abs((double)a - b)).Max();
        var generated = new List<int>();
        while (generated.Count < 16)
        {
            var next = Array.IndexOf(logits, logits.Max());
            generated.Add(next);
            tokens.Add(next);
            if (generated.Count < 16)
            {
                logits = Step(model, cache, tokens, blocks, computed: tokens.Count - 1);
            }
        }

        var matches = generated.Zip(prompt.Greedy16).TakeWhile(p => p.First == p.Second).Count();
        return (new FixtureResult(name, model.DtypeName, cache.Dtype.Name, model.FusedKernelsActive(cache.Dtype), index, maxError, matches), lastLogits);
    }

    static float[] Step(LoadedModel model, PagedKVCache cache, List<int> tokens, int[] blocks, int computed)
    {
        using var scope = NewDisposeScope();
        var step = StepInputs.Build([new StepSequence(tokens, computed, tokens.Count - computed, blocks)], cache.BlockSize);
        return model.Forward(step, cache).cpu().data<float>().ToArray();
    }
}
