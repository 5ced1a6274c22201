using System.Text.Json.Nodes;

namespace Serving.Bench.Tests;

/// A shape that cannot fit the device's memory (MHA at batch 256 and context 2048 on one H200 needs 275 GB of
/// KV cache) is reported as not fitting, and the run measures the others and succeeds, instead of ending in an
/// out-of-memory error. Run here on the CPU, with shapes too large for this machine's memory.
public sealed class ShapePlanTests
{
    [Fact]
    public void ShapesThatDoNotFitAreReportedAndTheRestAreMeasured()
    {
        using var dir = new TempDirectory();
        var json = dir.File("bench.json");
        var exitCode = new BenchRunner(new BenchOptions
        {
            Models = ["tiny-gqa"], Dtype = "float32", Device = "cpu",
            BatchSizes = [2, 100_000_000], ContextLengths = [40], Prefill = [(2, 9), (1_000_000, 4096)], GenerateBatches = [],
            Steps = 2, Check = false, JsonPath = json,
        }).Run();

        Assert.Equal(0, exitCode);
        var report = JsonNode.Parse(File.ReadAllText(json))!;
        var decode = Assert.Single(report["decode"]!.AsArray());
        Assert.Equal(2, decode!["batch"]!.GetValue<int>());
        Assert.Single(report["prefill"]!.AsArray());
        var skipped = report["skipped"]!.AsArray().Select(s => $"{s!["kind"]} {s["shape"]} {s["reason"]}").ToList();
        Assert.Equal(["decode 100000000 x 40 does not fit", "prefill 1000000 x 4096 does not fit"], skipped);
        Assert.All(report["skipped"]!.AsArray(), s => Assert.True(s!["kvBytesNeeded"]!.GetValue<long>() > s["kvBytesAvailable"]!.GetValue<long>()));
    }

    /// The step buffers reserved before graphs are captured hold the run's largest step: the most tokens (a prefill of
    /// 16 x 512, or generate()'s prefill chunks of at most 8192 tokens), sequences (a batch of 64) and blocks of a
    /// sequence (2048 / 16); a shape that does not fit adds nothing.
    [Fact]
    public void TheLargestStepIsWhatTheRunSends()
    {
        var config = Serving.Engine.Model.ModelPresets.Get("tiny-gqa");
        var spec = Serving.Engine.KVCache.KVCacheSpec.For(config, TorchSharp.torch.ScalarType.Float32);
        ShapePlan Plan(int[] batches, int[] contexts, (int, int)[] prefill, int[] generate) => new(new BenchOptions
        {
            Models = ["tiny-gqa"], BatchSizes = batches, ContextLengths = contexts, Prefill = prefill, GenerateBatches = generate,
        }, spec, memoryBytes: 1L << 36, weightBytes: 0, "tiny-gqa");

        Assert.Equal((8192, 64, 128), Plan([1, 64], [512, 2048], [(16, 512)], [1, 64]).LargestStep);
        Assert.Equal((8192, 64, 40), Plan([1], [100], [], [64]).LargestStep);     // generate()'s chunks of 16 prompts of 512; 640 tokens a sequence
        Assert.Equal((64, 64, 7), Plan([64], [100], [(1_000_000_000, 4096)], []).LargestStep);
    }

    /// The decode graphs are the server's buckets up to the largest batch the run decodes (generate()'s included), so
    /// batch 64 replays the graph of 57 to 64 the server would, not one serving every batch from 2 up; a batch that
    /// does not fit captures nothing.
    [Fact]
    public void TheGraphsAreTheServersBucketsUpToTheLargestBatch()
    {
        var config = Serving.Engine.Model.ModelPresets.Get("tiny-gqa");
        var spec = Serving.Engine.KVCache.KVCacheSpec.For(config, TorchSharp.torch.ScalarType.Float32);
        ShapePlan Plan(int[] batches, int[] generate) => new(new BenchOptions
        {
            Models = ["tiny-gqa"], BatchSizes = batches, ContextLengths = [512], Prefill = [], GenerateBatches = generate,
        }, spec, memoryBytes: 1L << 30, weightBytes: 0, "tiny-gqa");

        Assert.Equal([1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64], Plan([1, 64], [1]).GraphBatchSizes);
        Assert.Equal([1, 2, 4, 8, 12], Plan([1], [12]).GraphBatchSizes);           // generate()'s batch of 12: its own last bucket
        Assert.Equal([1, 2, 3], Plan([3, 100_000_000], []).GraphBatchSizes);       // the batch that does not fit adds none
        Assert.Empty(Plan([], []).GraphBatchSizes);
    }
}
