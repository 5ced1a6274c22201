using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Bench;

/// One prompt of a reference checkpoint run on the device: the largest logit error of the prompt's last
/// position against transformers' float32 reference, and how many of its 16 greedy tokens agree.
internal sealed record FixtureResult(string Model, string Dtype, bool FusedKernels, int Prompt, double MaxLogitError, int GreedyMatches);

/// Runs the reference checkpoints of ../shared/fixtures (transformers' outputs in reference.json) through the
/// engine model on the device: float32 must match the reference as on CPU; bfloat16 is reported as the count of
/// leading greedy tokens that agree (at least 8 is the bar, or a reference near-tie).
internal static class FixtureChecks
{
    public static IEnumerable<FixtureResult> Run(string fixturesRoot, Device device)
    {
        foreach (var dir in Directory.GetDirectories(fixturesRoot).Where(d => File.Exists(Path.Combine(d, "config.json"))).Order())
        {
            var reference = Fixtures.ReferenceIn(dir);
            foreach (var dtype in new[] { "float32", "bfloat16" })
            {
                using var model = ModelLoader.Load(dir, dtype, device);
                using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
                for (var i = 0; i < reference.Prompts.Count; i++)
                {
                    yield return RunPrompt(Path.GetFileName(dir), model, cache, reference.Prompts[i], i);
                }
            }
        }
    }

    // Prefill the prompt in one step, then decode 16 tokens one step at a time (the decode kernel's path).
    private static FixtureResult RunPrompt(string name, LoadedModel model, PagedKVCache cache, FixturePrompt prompt, int index)
    {
        var tokens = prompt.InputIds.ToList();
        var blocks = Enumerable.Range(0, SlotMapping.BlocksFor(tokens.Count + 16, cache.BlockSize)).Select(b => (b * 7) % cache.NumBlocks).ToArray();
        var logits = Step(model, cache, tokens, blocks, computed: 0);
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
        return new FixtureResult(name, model.DtypeName, model.FusedKernelsActive(cache.Dtype), index, maxError, matches);
    }

    private static float[] Step(LoadedModel model, PagedKVCache cache, List<int> tokens, int[] blocks, int computed)
    {
        using var scope = NewDisposeScope();
        var step = StepInputs.Build([new StepSequence(tokens, computed, tokens.Count - computed, blocks)], cache.BlockSize);
        return model.Forward(step, cache).cpu().data<float>().ToArray();
    }
}
