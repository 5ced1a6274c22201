using System.Text.Json.Nodes;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Commands;

/// `serve` and `compare` against the real server on loopback (llama-gqa and llama-mha fixtures).
public sealed class EndToEndTests
{
    static TraceSettings Trace(string resultFile) => new()
    {
        Dataset = new DatasetOptions { NumPrompts = 12, RandomInputLen = 24, RandomOutputLen = 8, RandomRangeRatio = 0.5, Seed = 1 },
        Rates = [20, double.PositiveInfinity],
        IgnoreEos = true,
        Slo = GoodputSlo.Parse(["ttft:60000", "tpot:60000"]),
        ResultFile = resultFile,
        ChartDir = Path.GetDirectoryName(resultFile),
        ShowProgress = false,
    };

    [Fact]
    public async Task ServeWritesEveryMetricToTheResultFileAndDrawsTheCharts()
    {
        await using var server = await LoopbackServer.StartAsync("llama-gqa", "gqa");
        using var dir = new TempDirectory();
        var endpoint = new Endpoint("openai", server.BaseUrl, null, null);

        Assert.Equal(0, await ServeCommand.RunAsync(endpoint, Trace(dir.File("result.json")), CancellationToken.None));

        var result = JsonNode.Parse(File.ReadAllText(dir.File("result.json")))!;
        Assert.Equal(256, result["server"]!["kv_bytes_per_token"]!.GetValue<long>());   // 2 x 2 layers x 2 KV heads x 8 x 4 bytes
        var runs = result["runs"]!.AsArray();
        Assert.Equal(2, runs.Count);
        foreach (var run in runs)
        {
            Assert.Equal((12, 0), (run!["completed"]!.GetValue<int>(), run["failed"]!.GetValue<int>()));
            // --ignore-eos: every request generates exactly its requested length
            Assert.Equal(run["output_lens"]!.AsArray().Sum(n => n!.GetValue<int>()), run["total_output_tokens"]!.GetValue<int>());
            foreach (var key in new[] { "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms", "p90_e2el_ms", "request_goodput", "output_throughput" })
                Assert.True(run[key]!.GetValue<double>() > 0, key);
        }
        foreach (var chart in new[] { "serve_ttft_cdf.png", "serve_tpot_cdf.png", "serve_e2el_cdf.png" })
            Assert.True(new FileInfo(dir.File(chart)).Length > 1000, chart);
    }

    [Fact]
    public async Task ServeLoadsAnEmbeddingServer()
    {
        await using var server = await LoopbackServer.StartAsync("llama-gqa", "embed", extraArgs: ["--runner", "pooling"]);
        using var dir = new TempDirectory();
        var endpoint = new Endpoint("openai-embeddings", server.BaseUrl, null, null);

        Assert.Equal(0, await ServeCommand.RunAsync(endpoint, Trace(dir.File("embed.json")), CancellationToken.None));

        foreach (var run in JsonNode.Parse(File.ReadAllText(dir.File("embed.json")))!["runs"]!.AsArray())
        {
            Assert.Equal((12, 0), (run!["completed"]!.GetValue<int>(), run["failed"]!.GetValue<int>()));
            // the server's count of every input's tokens; nothing generated; the answer arrives whole
            Assert.Equal(run["input_lens"]!.AsArray().Sum(n => n!.GetValue<int>()), run["total_input_tokens"]!.GetValue<int>());
            Assert.Equal(0, run["total_output_tokens"]!.GetValue<int>());
            Assert.True(run["mean_e2el_ms"]!.GetValue<double>() > 0);
            Assert.Equal(run["mean_e2el_ms"]!.GetValue<double>(), run["mean_ttft_ms"]!.GetValue<double>(), 1e-9);
        }
    }

    [Fact]
    public async Task LoraModulesSpreadTheTraceOverTheServersAdapters()
    {
        using var first = LoraFixture.Create("llama-gqa", seed: 1);
        using var second = LoraFixture.Create("llama-gqa", seed: 2);
        await using var server = await LoopbackServer.StartAsync("llama-gqa", "gqa",
            extraArgs: ["--enable-lora", "--lora-modules", $"first={first.Adapter.Path}", $"second={second.Adapter.Path}"]);
        using var dir = new TempDirectory();
        var trace = Trace(dir.File("lora.json")) with { LoraModules = ["first", "second"], Rates = [double.PositiveInfinity] };
        var plain = Serving.LoadGen.Runner.TraceRunner.BuildRequests(Trace(dir.File("x.json")), new Serving.LoadGen.Clients.ServerInfo { ModelId = "gqa", VocabSize = 128 });
        var spread = Serving.LoadGen.Runner.TraceRunner.BuildRequests(trace, new Serving.LoadGen.Clients.ServerInfo { ModelId = "gqa", VocabSize = 128 });
        // the same prompts as without adapters, each naming one of them, both used
        Assert.Equal(plain.Select(r => r.Prompt.TokenIds), spread.Select(r => r.Prompt.TokenIds));
        Assert.Equal(["first", "second"], spread.Select(r => r.Model!).Distinct().Order());

        Assert.Equal(0, await ServeCommand.RunAsync(new Endpoint("openai", server.BaseUrl, null, null), trace, CancellationToken.None));
        var run = JsonNode.Parse(File.ReadAllText(dir.File("lora.json")))!["runs"]![0]!;
        Assert.Equal((12, 0), (run["completed"]!.GetValue<int>(), run["failed"]!.GetValue<int>()));
    }

    [Fact]
    public async Task CompareRunsTheSameTraceOnBothServersAndReportsTheirKVCaches()
    {
        await using var gqa = await LoopbackServer.StartAsync("llama-gqa", "gqa");
        await using var mha = await LoopbackServer.StartAsync("llama-mha", "mha");
        using var dir = new TempDirectory();
        var trace = Trace(dir.File("compare.json")) with { Rates = [10, 40] };

        Assert.Equal(0, await CompareCommand.RunAsync(new Endpoint("openai", gqa.BaseUrl, null, null),
            new Endpoint("openai", mha.BaseUrl, null, null), null, null, trace, numResamples: 200, CancellationToken.None));

        var result = JsonNode.Parse(File.ReadAllText(dir.File("compare.json")))!;
        Assert.Equal((256L, 1024L), (result["server_a"]!["kv_bytes_per_token"]!.GetValue<long>(), result["server_b"]!["kv_bytes_per_token"]!.GetValue<long>()));
        var rates = result["rates"]!.AsArray();
        Assert.Equal(2, rates.Count);
        foreach (var rate in rates)
        {
            // same trace: the same requests, so the same token totals on both sides
            Assert.Equal(rate!["a"]!["total_input_tokens"]!.GetValue<long>(), rate["b"]!["total_input_tokens"]!.GetValue<long>());
            Assert.Equal(rate["a"]!["total_output_tokens"]!.GetValue<long>(), rate["b"]!["total_output_tokens"]!.GetValue<long>());
            var ttft = rate["ratios"]!.AsArray().Single(r => r!["metric"]!.GetValue<string>() == "TTFT p99 ms")!;
            Assert.True(ttft["ratio"]!.GetValue<double>() > 0);
            Assert.True(ttft["ci_low"]!.GetValue<double>() <= ttft["ci_high"]!.GetValue<double>());
        }
        Assert.True(File.Exists(dir.File("compare_throughput_vs_rate.png")));
        Assert.True(File.Exists(dir.File("compare_tpot_cdf.png")));
    }
}
