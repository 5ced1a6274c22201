using System.CommandLine;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Metrics;
using Serving.LoadGen.Reports;
using Serving.LoadGen.Runner;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `serve`: drives one running server with a trace at one or more request rates and reports vLLM's metrics.
internal static class ServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "Benchmark a running server (OpenAI HTTP streaming or gRPC) with a synthetic or ShareGPT trace.");
        var endpoint = new EndpointOptions(command, "");
        var trace = new TraceOptions(command);
        command.SetAction((parse, ct) => RunAsync(endpoint.Read(parse), trace.Read(parse), ct));
        return command;
    }

    public static async Task<int> RunAsync(Endpoint endpoint, TraceSettings trace, CancellationToken cancellationToken)
    {
        await using var backend = EndpointOptions.Connect(endpoint);
        var server = await backend.GetServerInfoAsync(endpoint.Model, cancellationToken);
        var requests = TraceRunner.BuildRequests(trace, server);
        var settings = new GenerationSettings(server.ModelId, trace.IgnoreEos);
        var results = new List<RateResult>();
        foreach (var rate in trace.Rates)
        {
            var run = await TraceRunner.RunAsync(backend, settings, requests, rate, trace, server.ModelId, cancellationToken);
            var metrics = MetricsCalculator.Compute(run, trace.Percentiles, trace.Slo);
            MetricsTable.Write(AnsiConsole.Console, $"Serving benchmark: {server.ModelId} @ {TraceRunner.RateText(rate)} req/s", metrics);
            results.Add(new RateResult(rate, run, metrics));
        }
        foreach (var path in ServeReport.Write(endpoint, server, trace, results))
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(path)}[/]");
        return results.All(r => r.Metrics.Completed > 0) ? 0 : 1;
    }
}
