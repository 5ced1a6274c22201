using System.CommandLine;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Compare;
using Serving.LoadGen.Reports;
using Serving.LoadGen.Runner;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `compare`: the same trace (seed, prompts, arrival times) against endpoints A and B at each rate, one after
/// the other, then one side-by-side table of paired ratios A/B with bootstrap intervals.
internal static class CompareCommand
{
    public static Command Create()
    {
        var command = new Command("compare", "Replay one trace against two servers (e.g. GQA and its MHA baseline) and compare them side by side.");
        var endpoints = new EndpointOptions(command, "-a", "-b");
        var trace = new TraceOptions(command);
        var labelA = new Option<string?>("--label-a") { Description = "Name of endpoint A in the table (default: its model)." };
        var labelB = new Option<string?>("--label-b") { Description = "Name of endpoint B in the table (default: its model)." };
        var resamples = new Option<int>("--bootstrap-samples") { Description = "Bootstrap resamples per metric.", DefaultValueFactory = _ => 1000 };
        command.Options.Add(labelA);
        command.Options.Add(labelB);
        command.Options.Add(resamples);
        command.SetAction((parse, ct) => RunAsync(endpoints.Read(parse, 0), endpoints.Read(parse, 1), parse.GetValue(labelA),
            parse.GetValue(labelB), trace.Read(parse), parse.GetValue(resamples), ct));
        return command;
    }

    public static async Task<int> RunAsync(Endpoint a, Endpoint b, string? labelA, string? labelB, TraceSettings trace,
        int numResamples, CancellationToken cancellationToken)
    {
        await using var backendA = EndpointOptions.Connect(a);
        await using var backendB = EndpointOptions.Connect(b);
        var serverA = await backendA.GetServerInfoAsync(a.Model, cancellationToken);
        var serverB = await backendB.GetServerInfoAsync(b.Model, cancellationToken);
        if (serverA.VocabSize is { } va && serverB.VocabSize is { } vb && va != vb)
            throw new ArgumentException($"the two servers have different vocabularies ({va} and {vb}): one trace cannot serve both");
        var requests = TraceRunner.BuildRequests(trace, serverA);
        var (nameA, nameB) = (labelA ?? serverA.ModelId, labelB ?? serverB.ModelId);
        var rates = new List<RateComparison>();
        foreach (var rate in trace.Rates)
        {
            var runA = await TraceRunner.RunAsync(backendA, new(serverA.ModelId, trace.IgnoreEos), requests, rate, trace, $"A {nameA}", cancellationToken);
            var runB = await TraceRunner.RunAsync(backendB, new(serverB.ModelId, trace.IgnoreEos), requests, rate, trace, $"B {nameB}", cancellationToken);
            rates.Add(Comparison.Pair(rate, runA, runB, trace.Percentiles, trace.Slo, numResamples, trace.Dataset.Seed));
        }
        var comparison = new Comparison(nameA, nameB, serverA, serverB, rates);
        CompareReport.WriteTable(AnsiConsole.Console, comparison);
        foreach (var path in CompareReport.Write(comparison, trace.ResultFile, trace.ChartDir))
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(path)}[/]");
        return rates.All(r => r.MetricsA.Completed > 0 && r.MetricsB.Completed > 0) ? 0 : 1;
    }
}
