using System.CommandLine;
using System.Text.Json.Nodes;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Runner;
using Serving.LoadGen.Tests.Support;

namespace Serving.LoadGen.Tests.Commands;

/// `serve` and `generate` over gRPC against the real server on loopback (its --grpc-port bound to a free port).
public sealed class GrpcEndToEndTests(GrpcLoopbackServer shared) : IClassFixture<GrpcLoopbackServer>
{
    readonly LoopbackServer _server = shared.Server;

    static TraceSettings Trace(TempDirectory dir, string resultFile) => new()
    {
        Dataset = new DatasetOptions { NumPrompts = 12, RandomInputLen = 24, RandomOutputLen = 8, RandomRangeRatio = 0.5, Seed = 1 },
        Rates = [40],
        IgnoreEos = true,
        Slo = GoodputSlo.Parse(["ttft:60000"]),
        ResultFile = dir.File(resultFile),
        ChartDir = dir.Path,
        ShowProgress = false,
    };

    [Fact]
    public async Task ServeOverGrpcCompletesEveryRequestWithItsRequestedLength()
    {
        using var dir = new TempDirectory();
        var trace = Trace(dir, "grpc.json");
        var endpoint = new Endpoint("grpc", _server.GrpcUrl, null, null);
        Assert.Equal(0, await ServeCommand.RunAsync(endpoint, trace, CancellationToken.None));

        var result = JsonNode.Parse(File.ReadAllText(dir.File("grpc.json")))!;
        Assert.Equal(256, result["server"]!["kv_bytes_per_token"]!.GetValue<long>()); // from GetModelInfo
        var run = result["runs"]![0]!;
        Assert.Equal((12, 0), (run["completed"]!.GetValue<int>(), run["failed"]!.GetValue<int>()));
        // the same seeded trace: with ignore_eos every request generates exactly the tokens it asked for, and
        // its prompt (token ids) is counted by the server as it was built
        var requests = await TraceRequestsAsync(endpoint, trace);
        Assert.Equal(requests.Select(r => r.OutputLength), Ints(run["output_lens"]!));
        Assert.Equal(requests.Select(r => r.PromptLength), Ints(run["input_lens"]!));
        // one arrival per token (a chunk per engine step): TTFT, then outputLength - 1 inter-token latencies
        Assert.Equal(requests.Select(r => r.OutputLength - 1), run["itls"]!.AsArray().Select(itl => itl!.AsArray().Count));
        Assert.True(run["mean_ttft_ms"]!.GetValue<double>() > 0);
    }

    [Fact]
    public async Task CompareOverGrpcRunsTheTraceOnBothEndpoints()
    {
        using var dir = new TempDirectory();
        var endpoint = new Endpoint("grpc", _server.GrpcUrl, null, null);

        Assert.Equal(0, await CompareCommand.RunAsync(endpoint, endpoint, "A", "B", Trace(dir, "compare.json"), numResamples: 50,
            CancellationToken.None));

        var result = JsonNode.Parse(File.ReadAllText(dir.File("compare.json")))!;
        Assert.Equal((256L, 256L), (result["server_a"]!["kv_bytes_per_token"]!.GetValue<long>(), result["server_b"]!["kv_bytes_per_token"]!.GetValue<long>()));
        var rate = result["rates"]!.AsArray().Single()!;
        foreach (var side in new[] { "a", "b" })
            Assert.Equal((12, 0), (rate[side]!["completed"]!.GetValue<int>(), rate[side]!["failed"]!.GetValue<int>()));
        Assert.Equal(rate["a"]!["total_output_tokens"]!.GetValue<long>(), rate["b"]!["total_output_tokens"]!.GetValue<long>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GenerateOverGrpcPrintsTheSameGreedyTextAsOverHttp(bool chat)
    {
        string[] options = ["--max-tokens", "12", .. chat ? ["--chat"] : Array.Empty<string>(), "Once upon a time"];
        var (grpcCode, overGrpc) = await GenerateAsync(["--backend", "grpc", "--url", _server.GrpcUrl.ToString(), .. options]);
        var (httpCode, overHttp) = await GenerateAsync(["--url", _server.BaseUrl.ToString(), .. options]);

        Assert.Equal((0, 0), (grpcCode, httpCode));
        Assert.NotEqual("", overGrpc.Trim());
        Assert.Equal(overHttp, overGrpc);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GrpcCountsTheSameTokensAsHttp(bool chat)
    {
        var suffix = chat ? "-chat" : "";
        var overGrpc = await SendAsync(new Endpoint("grpc" + suffix, _server.GrpcUrl, null, null), "Once upon a time");
        var overHttp = await SendAsync(new Endpoint("openai" + suffix, _server.BaseUrl, null, null), "Once upon a time");

        Assert.True(overGrpc.Success, overGrpc.Error);
        Assert.Equal(12, overGrpc.OutputTokens);
        Assert.Equal(11, overGrpc.Itl.Count);
        Assert.Equal((overHttp.PromptLength, overHttp.GeneratedText), (overGrpc.PromptLength, overGrpc.GeneratedText));
    }

    [Fact]
    public async Task RefusedCallsBecomeFailedRequestsCarryingTheirStatus()
    {
        await using var backend = EndpointOptions.Connect(new Endpoint("grpc", _server.GrpcUrl, null, null));
        var server = await backend.GetServerInfoAsync(null, CancellationToken.None);
        var prompt = new BenchRequest(0, BenchPrompt.OfText("Hello"), 0, 4);
        var tooLong = new BenchRequest(1, BenchPrompt.Ids([.. Enumerable.Repeat(5, server.MaxModelLen!.Value + 1)]), 0, 4);

        var unknownModel = await backend.SendAsync(prompt, new GenerationSettings("no-such-model", IgnoreEos: true), CancellationToken.None);
        var overLong = await backend.SendAsync(tooLong, new GenerationSettings(server.ModelId, IgnoreEos: true), CancellationToken.None);

        Assert.False(unknownModel.Success);
        Assert.StartsWith("gRPC NotFound: ", unknownModel.Error);
        Assert.False(overLong.Success);
        Assert.StartsWith("gRPC InvalidArgument: ", overLong.Error);
    }

    [Fact]
    public async Task AnUnreachableServerFailsTheRequestAsUnavailable()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();   // nothing listens there now
        await using var backend = EndpointOptions.Connect(new Endpoint("grpc", new Uri($"http://127.0.0.1:{port}"), null, null));

        var outcome = await backend.SendAsync(new BenchRequest(0, BenchPrompt.OfText("Hello"), 0, 4),
            new GenerationSettings("gqa", IgnoreEos: true), CancellationToken.None);

        Assert.False(outcome.Success);
        Assert.StartsWith("gRPC Unavailable: ", outcome.Error);
    }

    /// Runs `generate ARGS` as the command line parses it, capturing the streamed text.
    static async Task<(int ExitCode, string Text)> GenerateAsync(string[] args)
    {
        var output = new StringWriter();
        var root = new RootCommand { GenerateCommand.Create() };
        var code = await root.Parse(["generate", .. args]).InvokeAsync(new InvocationConfiguration { Output = output });
        return (code, output.ToString());
    }

    static async Task<RequestOutcome> SendAsync(Endpoint endpoint, string prompt)
    {
        await using var backend = EndpointOptions.Connect(endpoint);
        var server = await backend.GetServerInfoAsync(null, CancellationToken.None);
        var request = new BenchRequest(0, BenchPrompt.OfText(prompt), 0, 12);
        return await backend.SendAsync(request, new GenerationSettings(server.ModelId, IgnoreEos: true), CancellationToken.None);
    }

    static async Task<IReadOnlyList<BenchRequest>> TraceRequestsAsync(Endpoint endpoint, TraceSettings trace)
    {
        await using var backend = EndpointOptions.Connect(endpoint);
        return TraceRunner.BuildRequests(trace, await backend.GetServerInfoAsync(null, CancellationToken.None));
    }

    static IEnumerable<int> Ints(JsonNode array) => array.AsArray().Select(n => n!.GetValue<int>());
}
