using System.Text.Json.Nodes;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Commands;

public sealed class ChartCommandTests
{
    [Fact]
    public void DrawsTheCurvesOfASavedCompareResult()
    {
        using var dir = new TempDirectory();
        JsonObject Side(double throughput) => new() { ["output_throughput"] = throughput, ["p99_ttft_ms"] = 100.0, ["p99_tpot_ms"] = 10.0 };
        var result = new JsonObject
        {
            ["label_a"] = "GQA", ["label_b"] = "MHA",
            ["rates"] = new JsonArray(
                new JsonObject { ["request_rate"] = 4.0, ["a"] = Side(500), ["b"] = Side(500) },
                new JsonObject { ["request_rate"] = 64.0, ["a"] = Side(5800), ["b"] = Side(2400) }),
        };
        File.WriteAllText(dir.File("ab.json"), result.ToJsonString());

        var files = ChartCommand.Draw(dir.File("ab.json"), dir.File("charts"));

        Assert.Equal(3, files.Count);
        Assert.All(files, file => Assert.True(new FileInfo(file).Length > 5000, file));
    }

    /// --request-rate inf (the default) is written as "inf"; it has no place on the rate axis and is left out.
    [Fact]
    public void AnUnboundedRateIsLeftOffTheCurves()
    {
        using var dir = new TempDirectory();
        JsonObject Side(double throughput) => new() { ["output_throughput"] = throughput, ["p99_ttft_ms"] = 100.0, ["p99_tpot_ms"] = 10.0 };
        var result = new JsonObject
        {
            ["label_a"] = "GQA", ["label_b"] = "MHA",
            ["rates"] = new JsonArray(
                new JsonObject { ["request_rate"] = 4.0, ["a"] = Side(500), ["b"] = Side(500) },
                new JsonObject { ["request_rate"] = "inf", ["a"] = Side(6000), ["b"] = Side(2500) }),
        };
        File.WriteAllText(dir.File("ab.json"), result.ToJsonString());

        var files = ChartCommand.Draw(dir.File("ab.json"), dir.File("charts"));

        Assert.Equal(3, files.Count);
        Assert.All(files, file => Assert.True(File.Exists(file), file));
    }

    [Fact]
    public void AServeResultIsRefusedSayingWhy()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("serve.json"), new JsonObject { ["runs"] = new JsonArray() }.ToJsonString());
        var error = Assert.Throws<ArgumentException>(() => ChartCommand.Draw(dir.File("serve.json"), dir.Path));
        Assert.Contains("not a compare result", error.Message);
    }
}
