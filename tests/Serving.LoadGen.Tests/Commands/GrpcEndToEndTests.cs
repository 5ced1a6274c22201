using System.Text.Json.Nodes;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Commands;

/// The load generator and the bundled client over gRPC, against the real server on loopback.
public sealed class GrpcEndToEndTests
{
    [Fact]
    public async Task ServeOverGrpcCompletesEveryRequestWithItsLength()
    {
        await using var server = await LoopbackServer.StartAsync("llama-gqa", "gqa", grpc: true);
        using var dir = new TempDirectory();
        var trace = new TraceSettings
        {
            Dataset = new DatasetOptions { NumPrompts = 12, RandomInputLen = 24, RandomOutputLen = 8, RandomRangeRatio = 0.5, Seed = 1 },
            Rates = [40],
            IgnoreEos = true,
            Slo = GoodputSlo.Parse(["ttft:60000"]),
            ResultFile = dir.File("grpc.json"),
            ChartDir = dir.Path,
            ShowProgress = false,
        };
        Assert.Equal(0, await ServeCommand.RunAsync(new Endpoint("grpc", server.GrpcUrl, null, null), trace, CancellationToken.None));

        var result = JsonNode.Parse(File.ReadAllText(dir.File("grpc.json")))!;
        Assert.Equal(256, result["server"]!["kv_bytes_per_token"]!.GetValue<long>()); // from GetModelInfo
        var run = result["runs"]![0]!;
        Assert.Equal((12, 0), (run["completed"]!.GetValue<int>(), run["failed"]!.GetValue<int>()));
        Assert.Equal(run["output_lens"]!.AsArray().Sum(n => n!.GetValue<int>()), run["total_output_tokens"]!.GetValue<int>());
        Assert.True(run["mean_ttft_ms"]!.GetValue<double>() > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GrpcGivesTheSameGreedyTextAsHttp(bool chat)
    {
        await using var server = await LoopbackServer.StartAsync("llama-gqa", "gqa", grpc: true);
        var suffix = chat ? "-chat" : "";
        var overGrpc = await GenerateAsync(new Endpoint("grpc" + suffix, server.GrpcUrl, null, null));
        var overHttp = await GenerateAsync(new Endpoint("openai" + suffix, server.BaseUrl, null, null));
        Assert.True(overGrpc.Success, overGrpc.Error);
        Assert.Equal(12, overGrpc.OutputTokens);
        Assert.Equal(overHttp.GeneratedText, overGrpc.GeneratedText);
        Assert.Equal(overHttp.PromptLength, overGrpc.PromptLength);
    }

    static async Task<RequestOutcome> GenerateAsync(Endpoint endpoint)
    {
        await using var backend = EndpointOptions.Connect(endpoint);
        var server = await backend.GetServerInfoAsync(null, CancellationToken.None);
        var request = new BenchRequest(0, BenchPrompt.OfText("Once upon a time"), 0, 12);
        return await backend.SendAsync(request, new GenerationSettings(server.ModelId, IgnoreEos: true), CancellationToken.None);
    }
}
