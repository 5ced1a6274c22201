using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model.Backends;

/// The engine model on CUDA, where it runs the fused backend, against transformers' float32 references: prefill
/// (the rope/KV-write, norm and SiLU kernels with SDPA attention) and decode (the paged decode kernel); a KV pool in
/// another dtype than the model; and a decode step captured as a CUDA graph and replayed.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class CudaBackendTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [GpuTheory, MemberData(nameof(Models))]
    public void Float32OnCudaMatchesTransformers(string fixture)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        Assert.True(model.FusedKernelsActive());
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var seq = runner.Add(prompt.InputIds);
            var logits = runner.Step([(seq, prompt.InputIds.Length)])[0];
            var maxError = logits.Zip(prompt.LastLogits, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"{fixture} '{prompt.Text}': max |last logits - reference| = {maxError:E2}");
            Assert.True(maxError <= 1e-3, $"max error {maxError}");
            var generator = new PagedRunner(model, cache); // greedy from the prompt again: the first token needs its logits
            Assert.Equal(prompt.Greedy16, generator.Greedy(generator.Add(prompt.InputIds), 16));
        }
    }

    /// Through the engine on CUDA with steps of at most 4 tokens: a prompt's early chunks need no logits, so those steps
    /// run the final norm over no rows (a launch of no blocks, skipped); the greedy tokens are the reference's.
    [GpuTheory, MemberData(nameof(Models))]
    public async Task AChunkedPromptThroughTheEngineGivesTheReferenceTokens(string fixture)
    {
        var prompt = Fixtures.Reference(fixture).Prompts.MaxBy(p => p.InputIds.Length)!;
        await using var engine = await Execution.EngineTestHelpers.StartAsync(fixture, o => o with
        {
            Device = "cuda",
            MaxNumBatchedTokens = 4,
            NumGpuBlocksOverride = 64,
        });
        var completion = await Execution.EngineTestHelpers.CollectAsync(engine, Execution.EngineTestHelpers.Greedy(prompt.InputIds, 16));
        Assert.Equal(prompt.Greedy16, completion.Tokens());
    }

    /// vLLM's --kv-cache-memory-bytes on CUDA: the pool has that size instead of what --gpu-memory-utilization leaves,
    /// and a size the GPU cannot hold fails the start naming the flag.
    [GpuFact]
    public async Task KVCacheMemoryBytesSizesTheGpuPool()
    {
        const long bytes = 3L << 20;
        await using (var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Device = "cuda", KVCacheMemoryBytes = bytes }))
            Assert.Equal(bytes / (engine.Info.BlockSize * engine.Info.KVBytesPerToken), engine.Info.NumKVBlocks);
        // with --max-model-len auto a pool of 10 blocks of 16 tokens (256 bytes a token in float32) is a context of 160
        await using (var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with
        {
            Device = "cuda", KVCacheMemoryBytes = 10 * 16 * 256, MaxModelLen = EngineOptions.AutoMaxModelLen,
        }))
            Assert.Equal((10, 160), (engine.Info.NumKVBlocks, engine.Info.MaxModelLen));
        var refused = await Assert.ThrowsAsync<ModelLoadException>(() =>
            Execution.EngineTestHelpers.StartAsync("llama-gqa", o => o with { Device = "cuda", KVCacheMemoryBytes = 1L << 50 }));
        Assert.Contains($"--kv-cache-memory-bytes {1L << 50} does not fit on cuda:0", refused.Message);
    }

    /// Chunks of 3 over blocks of 4: the fused prefill attends over earlier chunks gathered from the pool.
    [GpuTheory, MemberData(nameof(Models))]
    public void ChunkedPrefillOnCudaGivesTheReferenceTokens(string fixture)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 128, blockSize: 4);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            Assert.Equal(prompt.Greedy16, runner.Greedy(runner.Add(prompt.InputIds), 16, chunkSize: 3));
        }
    }

    /// The fused and the plain path on the same bfloat16 weights and pool: logits within bfloat16 rounding of each
    /// other, the same next token.
    [GpuTheory, MemberData(nameof(Models))]
    public void Bfloat16FusedPathAgreesWithThePlainPath(string fixture)
    {
        var prompt = Fixtures.Reference(fixture).Prompts[0];
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "bfloat16", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        model.UseFusedKernels = false;
        var plain = new PagedRunner(model, cache);
        var plainLogits = plain.Step([(plain.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
        model.UseFusedKernels = true;
        var fused = new PagedRunner(model, cache);
        var fusedLogits = fused.Step([(fused.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
        var maxDifference = fusedLogits.Zip(plainLogits, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{fixture}: max |fused - plain| bf16 logits = {maxDifference:E2}");
        Assert.True(maxDifference <= 0.1, $"max difference {maxDifference}");
        Assert.Equal(PagedRunner.ArgMax(plainLogits), PagedRunner.ArgMax(fusedLogits));
    }

    /// A float32 model over a bfloat16 pool: the kernels convert on the K/V write and the attention read; greedy
    /// tokens follow the reference for at least 8 tokens, or part at a float32 near-tie.
    [GpuTheory, MemberData(nameof(Models))]
    public void Float32ModelWithABfloat16PoolKeepsTheGreedyTokens(string fixture)
    {
        const double nearTie = 0.02;
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16, ScalarType.BFloat16);
        using var fp32 = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        Assert.True(model.FusedKernelsActive(KVCacheDtype.BFloat16));
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var tokens = runner.Greedy(runner.Add(prompt.InputIds), 16);
            var agree = tokens.Zip(prompt.Greedy16).TakeWhile(p => p.First == p.Second).Count();
            var gap = agree == 16 ? 0 : ReferenceGap(model, fp32, prompt, tokens, agree);
            output.WriteLine($"{fixture} '{prompt.Text}': {agree}/16 greedy tokens with a bf16 pool (gap {gap:F4})");
            Assert.True(agree >= 8 || gap < nearTie, $"only {agree} tokens agree, float32 gap {gap}");
        }
    }

    // the float32 logit gap between the reference's token and ours where they part, teacher-forced along the reference
    static double ReferenceGap(LoadedModel model, PagedKVCache fp32, Serving.Tests.Shared.FixturePrompt prompt, int[] tokens, int agree)
    {
        var forced = new PagedRunner(model, fp32);
        var seq = forced.Add(prompt.InputIds.Concat(prompt.Greedy16.Take(agree)));
        var logits = forced.Step([(seq, forced.Pending(seq))])[0];
        return logits[prompt.Greedy16[agree]] - logits[tokens[agree]];
    }

    /// float32 weights over an FP8 pool (scales 1.0) against the same over a bfloat16 pool: last-position logits close
    /// (FP8 keeps 3 mantissa bits), greedy tokens 8 or more of the reference's, or parting at a float32 near-tie.
    [GpuTheory, MemberData(nameof(Models))]
    public void AnFp8PoolStaysCloseToABfloat16One(string fixture)
    {
        const double nearTie = 0.05;
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        using var fp8 = model.CreateKVCache(numBlocks: 64, blockSize: 16, KVCacheDtype.Fp8E4M3);
        using var bf16 = model.CreateKVCache(numBlocks: 64, blockSize: 16, KVCacheDtype.BFloat16);
        using var fp32 = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        Assert.Equal(bf16.Spec.BytesPerToken / 2, fp8.Spec.BytesPerToken);
        foreach (var prompt in reference.Prompts)
        {
            var (fp8Runner, bf16Runner) = (new PagedRunner(model, fp8), new PagedRunner(model, bf16));
            var fp8Logits = fp8Runner.Step([(fp8Runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            var bf16Logits = bf16Runner.Step([(bf16Runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            var differences = fp8Logits.Zip(bf16Logits, (a, b) => Math.Abs((double)a - b)).ToArray();
            var generator = new PagedRunner(model, fp8);
            var tokens = generator.Greedy(generator.Add(prompt.InputIds), 16);
            var matching = tokens.Zip(prompt.Greedy16).TakeWhile(p => p.First == p.Second).Count();
            var gap = matching == 16 ? 0 : ReferenceGap(model, fp32, prompt, tokens, matching);
            output.WriteLine($"{fixture} '{prompt.Text}': |fp8 - bf16 KV| max {differences.Max():E2} mean {differences.Average():E2}; {matching}/16 greedy (gap {gap:F4})");
            Assert.True(differences.Max() < 0.5, $"max logit difference {differences.Max()}");
            Assert.True(matching >= 8 || gap < nearTie, $"{matching}/16 greedy tokens, float32 gap {gap}");
        }
    }

    /// --calculate-kv-scales: the first step that writes K/V measures them, and every layer's scales become
    /// max |K| / 448 and max |V| / 448 of what it wrote (no longer 1).
    [GpuFact]
    public void CalibrationSetsEveryLayersScalesFromTheFirstStep()
    {
        using var model = ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16, KVCacheDtype.Fp8E4M3);
        cache.CalibrateScales = true;
        var runner = new PagedRunner(model, cache);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;
        runner.Step([(runner.Add(prompt), prompt.Length)]);
        var scales = cache.ReadScales();
        for (var layer = 0; layer < model.Config.NumHiddenLayers; layer++)
        {
            output.WriteLine($"layer {layer}: k_scale {scales[layer, 0]:G4}, v_scale {scales[layer, 1]:G4}");
            Assert.True(scales[layer, 0] > 0 && scales[layer, 0] != 1f && scales[layer, 1] > 0 && scales[layer, 1] != 1f);
        }
    }

    /// Preset shapes (random weights made on the device) load with the fused path active and decode.
    [GpuFact]
    public void TinyPresetDecodesOnCuda()
    {
        using var model = ModelLoader.Load("tiny-gqa", "auto", CUDA);
        Assert.Equal("bfloat16", model.DtypeName);
        Assert.True(model.FusedKernelsActive());
        using var cache = model.CreateKVCache(numBlocks: 32, blockSize: 16);
        var runner = new PagedRunner(model, cache);
        var tokens = runner.Greedy(runner.Add([1, 2, 3, 4, 5]), 8);
        Assert.All(tokens, t => Assert.InRange(t, 0, model.Config.VocabSize - 1));
    }

    /// Decode steps of the tiny preset captured as CUDA graphs (batch sizes 1, 2, 4 and 8) on the model's stream,
    /// replayed with other tokens, other (shuffled) blocks, growing contexts and fewer sequences than the graph (padded):
    /// the replay gives exactly the logits of the same step run eagerly, and the pool the same K/V. The 700- and
    /// 1000-token contexts split the eager step's attention over partitions, fewer than the graph's grid has.
    [GpuFact]
    public void CapturedDecodeStepsReplayWithTheEagerResult()
    {
        using var model = ModelLoader.Load("tiny-gqa", "auto", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        AssertReplaysAreEager(model, cache, [[5, 40, 17, 90], [300, 2], [33], [1, 700, 65, 9, 128], [1000]], output.WriteLine);
    }

    /// Captures decode graphs of batch sizes 1, 2, 4 and 8 over cache (64 blocks of 16), then replays decode steps of
    /// these contexts (random tokens, shuffled blocks): each replay's logits and written K/V are the eager step's, bit
    /// for bit.
    internal static void AssertReplaysAreEager(LoadedModel model, PagedKVCache cache, int[][] steps, Action<string> log)
    {
        model.CaptureDecodeGraphs(cache, [1, 2, 4, 8]);
        Assert.Equal([1, 2, 4, 8], model.CudaGraphBatchSizes);
        var random = new Random(5);
        var vocab = Math.Min(1000, model.Config.VocabSize);
        StepInputs Decode(int[] contexts)
        {
            var blocks = Enumerable.Range(0, 64).OrderBy(_ => random.Next()).ToArray();
            var next = 0;
            return StepInputs.Build(contexts.Select(c =>
            {
                var table = blocks[next..(next += SlotMapping.BlocksFor(c, 16))];
                return new StepSequence(Enumerable.Range(0, c).Select(_ => random.Next(vocab)).ToArray(), c - 1, 1, table);
            }).ToList(), 16);
        }

        using var scope = NewDisposeScope();
        foreach (var contexts in steps)
        {
            var step = Decode(contexts);
            Prefill(model, cache, step);
            model.UseCudaGraphs = true;
            var replayed = model.Forward(step, cache).cpu();
            var written = cache.Keys(0).cpu();
            model.UseCudaGraphs = false;
            var eager = model.Forward(step, cache).cpu();
            log($"{contexts.Length} sequences: max |replay - eager| = {(replayed - eager).abs().max().item<float>():E2}");
            Assert.True(replayed.equal(eager).all().item<bool>(), "the replay must give the eager step's logits bit for bit");
            Assert.True(written.equal(cache.Keys(0).cpu()).all().item<bool>(), "the replay writes the K/V the eager step writes");
        }
    }

    // writes the context K/V of every sequence of a decode step (all its tokens but the last) into the pool
    static void Prefill(LoadedModel model, PagedKVCache cache, StepInputs decode)
    {
        var prompts = Enumerable.Range(0, decode.NumSeqs).Where(s => decode.ContextLengths[s] > 1).Select(s =>
            new StepSequence(Enumerable.Repeat(7, decode.ContextLengths[s]).ToArray(), 0, decode.ContextLengths[s] - 1, decode.BlockTables[s])).ToList();
        if (prompts.Count > 0) model.Forward(StepInputs.Build(prompts, 16), cache).Dispose();
    }
}
