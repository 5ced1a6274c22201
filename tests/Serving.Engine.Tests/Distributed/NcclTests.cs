using Serving.Engine.Cuda;
using Serving.Engine.Model;
using Serving.Engine.Distributed;
using Serving.Engine.Tests.Execution;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Distributed;

/// Tensor parallelism over NCCL on the GPUs of one host (skipped with fewer than two GPUs; CI has none): the
/// collectives on each rank's own stream, the fixtures split over 2 GPUs against transformers, and the engine.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class NcclTests(ITestOutputHelper output)
{
    [MultiGpuFact]
    public void AllReduceAndAllGatherOnEachRanksStream()
    {
        using var group = TensorParallelGroup.Create(CUDA, 2);
        output.WriteLine($"NCCL {Nccl.Version()} on {string.Join(", ", group.Devices)}");
        var results = Enumerable.Range(0, 2).Select(rank => Task.Factory.StartNew(() =>
        {
            var device = group.Devices[rank];
            using var stream = CudaStream.Create(CudaDevice.Open((int)device.index));
            stream.MakeCurrent();
            using var scope = NewDisposeScope();
            var x = ones(3, 8192, ScalarType.BFloat16, device) * (rank + 1.0);
            group.Communicators[rank].AllReduce(x);
            var gathered = empty(2, 4, dtype: ScalarType.Float32, device: device);
            group.Communicators[rank].AllGather(ones(4, device: device) * (float)rank, gathered);
            stream.Synchronize();
            return (Sum: x.to_type(ScalarType.Float32).cpu().data<float>().Distinct().ToArray(), Gathered: gathered.cpu().data<float>().ToArray());
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(results, TimeSpan.FromSeconds(60)), "the collectives did not complete");
        foreach (var result in results.Select(task => task.Result))
        {
            Assert.Equal([3f], result.Sum);
            Assert.Equal([0f, 0, 0, 0, 1, 1, 1, 1], result.Gathered);
        }
    }

    [MultiGpuTheory]
    [InlineData("llama-gqa")]
    [InlineData("llama-sp-mqa")]
    [InlineData("qwen3-gqa")]
    public void FixturesOverTwoGpusMatchTransformers(string fixture)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA, tensorParallelSize: 2);
        Assert.Equal(["cuda:0", "cuda:1"], model.Devices.Select(d => d.ToString()));
        output.WriteLine($"{fixture}: fused kernels {model.FusedKernelsActive()}");
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var logits = runner.Step([(runner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            var maxError = logits.Zip(prompt.LastLogits, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"{fixture} '{prompt.Text}': max |last logits - reference| = {maxError:E2}");
            Assert.True(maxError <= 1e-3, $"max error {maxError}");
            var generator = new PagedRunner(model, cache);
            Assert.Equal(prompt.Greedy16, generator.Greedy(generator.Add(prompt.InputIds), 16));
        }
    }

    /// Decode graphs captured on both ranks at once replay the eager step (the all-reduces inside them included).
    [MultiGpuFact]
    public void DecodeGraphsOfASplitModelReplayTheEagerStep()
    {
        using var model = ModelLoader.Load("tiny-gqa", "auto", CUDA, tensorParallelSize: 2);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        model.ReserveStepBuffers(cache.Dtype, 512, 8, 64);
        model.CaptureDecodeGraphs(cache, [1, 2, 4]);
        Assert.Equal([1, 2, 4], model.CudaGraphBatchSizes);
        var prompts = new[] { 5, 40, 17 }.Select((length, i) => new StepSequence(Enumerable.Range(1, length).ToArray(), 0, length - 1, [i * 4, i * 4 + 1, i * 4 + 2])).ToList();
        using var scope = NewDisposeScope();
        model.Forward(StepInputs.Build(prompts, 16), cache);
        var decode = StepInputs.Build(prompts.Select(p => p with { StartPosition = p.TokenIds.Count - 1, NumNewTokens = 1 }).ToList(), 16);
        model.UseCudaGraphs = true;
        var replayed = model.Forward(decode, cache).cpu();
        model.UseCudaGraphs = false;
        var eager = model.Forward(decode, cache).cpu();
        output.WriteLine($"max |replay - eager| = {(replayed - eager).abs().max().item<float>():E2}");
        Assert.True(replayed.equal(eager).all().item<bool>(), "the replay must give the eager step's logits bit for bit");
    }

    [MultiGpuFact]
    public async Task TheEngineServesAModelSplitOverTwoGpus()
    {
        await using var engine = await EngineTestHelpers.StartAsync("llama-gqa", o => o with { Device = "cuda", TensorParallelSize = 2 });
        Assert.Equal(2, engine.Info.TensorParallelSize);
        foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts)
            Assert.Equal(prompt.Greedy16, (await EngineTestHelpers.CollectAsync(engine, EngineTestHelpers.Greedy(prompt.InputIds, 16))).Tokens());
    }
}
