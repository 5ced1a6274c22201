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
}
