using System.Text.Json.Nodes;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Soak;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Commands;

/// A short `soak` against the real server on loopback, HTTP and gRPC together: mixed lengths, n > 1, stop
/// strings and abandoned streams all occur, nothing ends in a 5xx, and the KV cache is empty once idle.
/// The server runs inside the test process, beside other tests, so its memory and threads are not watched here
/// (SoakVerdict's flatness rule is checked on synthetic samples below; the hour-long run against a server process
/// is done by hand, its figures are in the notes).
public sealed class SoakTests(GrpcLoopbackServer shared) : IClassFixture<GrpcLoopbackServer>
{
    readonly LoopbackServer _server = shared.Server;

    [Fact]
    public async Task AShortSoakExercisesEveryKindOfRequestAndLeavesTheServerIdle()
    {
        using var dir = new TempDirectory();
        var options = new SoakOptions(_server.BaseUrl, _server.GrpcUrl, null, null, TimeSpan.FromSeconds(8), Concurrency: 6,
            ReportInterval: TimeSpan.FromSeconds(2), AbandonFraction: 0.2, Seed: 1, ServerPid: null);
        Assert.Equal(0, await SoakCommand.RunAsync(options, dir.File("soak.json"), CancellationToken.None));

        var report = JsonNode.Parse(File.ReadAllText(dir.File("soak.json")))!;
        var results = report["Results"]!.AsObject();
        Assert.True(results["Completed"]!.GetValue<long>() > 5, report.ToJsonString());
        Assert.True(results["Abandoned"]!.GetValue<long>() > 0);
        Assert.False(results.ContainsKey("ServerError"));
        Assert.Equal(4, report["Apis"]!.AsObject().Count);
        Assert.True(report["MultiSequenceRequests"]!.GetValue<long>() > 0);
        Assert.True(report["RequestsWithStops"]!.GetValue<long>() > 0);
        Assert.Equal(0, report["Idle"]!["KVUsage"]!.GetValue<double>());
        Assert.True(report["Samples"]!.AsArray().Count >= 3);
    }

    [Fact]
    public void MemoryOrThreadsThatGrowMoreThanTenPercentFailTheSoak()
    {
        static SoakSample Sample(long rssMiB, int threads) => new(0, 100, 0, 0, 0, 0, rssMiB << 20, threads);
        static SoakReport Report(params SoakSample[] samples) => new(samples, Sample(0, 0) with { RssBytes = null },
            new Dictionary<string, long> { ["Completed"] = 100 }, new Dictionary<string, long>(), 0, 0, []);

        Assert.Empty(SoakVerdict.Failures(Report(Sample(600, 22), Sample(640, 24), Sample(650, 21))));
        var grew = SoakVerdict.Failures(Report(Sample(600, 22), Sample(700, 22), Sample(800, 22)));
        Assert.Contains(grew, f => f.StartsWith("RSS moved", StringComparison.Ordinal));
        Assert.Contains(SoakVerdict.Failures(Report(Sample(600, 20), Sample(600, 20), Sample(600, 40))), f => f.StartsWith("threads", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("1h", 3600)]
    [InlineData("45", 45)]
    public void DurationsReadAsPeopleWriteThem(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), SoakCommand.ParseDuration(text));
}
