using Serving.Engine.Tokenization;
using Serving.LoadGen.Arrivals;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Commands;
using Serving.LoadGen.Datasets;
using Spectre.Console;

namespace Serving.LoadGen.Runner;

/// Builds a trace once (prompts from the seed) and runs it at a request rate against a backend, with a live
/// progress bar. The arrival times depend only on the seed, rate and burstiness, so two endpoints run at the
/// same rate see the same requests at the same offsets.
internal static class TraceRunner
{
    public static IReadOnlyList<BenchRequest> BuildRequests(TraceSettings trace, ServerInfo server)
    {
        var tokenizer = trace.TokenizerDir is { } dir ? TextTokenizer.Load(dir) : null;
        var vocabSize = tokenizer?.VocabSize ?? server.VocabSize
            ?? throw new ArgumentException("the server does not report its vocabulary size: pass --tokenizer DIR (the model's checkpoint folder)");
        var requests = DatasetFactory.Create(trace.Dataset, new TokenSpace(vocabSize, tokenizer));
        if (trace.LoraModules.Count == 0) return requests;
        // a generator of its own (the seed's), so the prompts and arrivals stay those of the same trace without adapters
        var pick = new Random(trace.Dataset.Seed);
        return [.. requests.Select(request => request with { Model = trace.LoraModules[pick.Next(trace.LoraModules.Count)] })];
    }

    public static async Task<BenchmarkRun> RunAsync(IGenerationBackend backend, GenerationSettings settings,
        IReadOnlyList<BenchRequest> requests, double rate, TraceSettings trace, string label, CancellationToken cancellationToken)
    {
        var offsets = ArrivalSchedule.Offsets(requests.Count, rate, trace.Burstiness, trace.Dataset.Seed);
        if (!trace.ShowProgress)
            return await BenchmarkRunner.RunAsync(requests, offsets, trace.MaxConcurrency, backend, settings, null, cancellationToken);
        return await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape($"{label} @ {RateText(rate)} req/s"), maxValue: requests.Count);
                return await BenchmarkRunner.RunAsync(requests, offsets, trace.MaxConcurrency, backend, settings,
                    _ => task.Increment(1), cancellationToken);
            });
    }

    public static string RateText(double rate) =>
        double.IsPositiveInfinity(rate) ? "inf" : rate.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
}
