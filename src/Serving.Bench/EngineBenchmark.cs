using System.Diagnostics;
using Serving.Engine;
using Serving.Engine.Sampling;
using Spectre.Console;

namespace Serving.Bench;

/// The offline engine benchmark: pushes N requests of random token ids through a real LlmEngine at
/// once and reports throughput, step times and request latencies. Works on CPU with a fixture checkpoint
/// and on CUDA with a preset.
/// StructuredOutputMix: the fraction of requests constrained to a JSON Schema (StructuredOutputMix.Schemas, in
/// turn); above 0 the same requests run once unconstrained and once with the mix, and both are reported. Under the
/// pooling runner (Engine.Runner) the requests are embeddings of their prompts (OutputLength unused).
internal sealed record EngineBenchmarkOptions(
    EngineOptions Engine, int NumPrompts, int InputLength, int OutputLength, int Seed, double StructuredOutputMix = 0);

internal static class EngineBenchmark
{
    public static async Task<int> RunAsync(EngineBenchmarkOptions options)
    {
        await using var engine = new LlmEngine(options.Engine);
        await engine.WaitUntilReadyAsync(CancellationToken.None);
        var info = engine.Info;
        AnsiConsole.MarkupLine($"[bold]{info.ModelType}[/] {info.NumAttentionHeads} heads / {info.NumKeyValueHeads} KV heads, " +
            $"{info.Dtype}{(info.WeightStorage is { } storage ? $", projections {storage}" : "")} on {info.Device}" + (info.TensorParallelSize == 1 ? "" : $" split over {info.TensorParallelSize} ranks") +
            $"; KV {info.KVBytesPerToken} B/token (per GPU), {info.KVCapacityTokens} tokens in {info.NumKVBlocks} blocks");
        if (options.StructuredOutputMix > 0)
            StructuredOutputMix.ReportFirstUse(options.Engine.Tokenizer ?? options.Engine.Model, info.VocabSize, []);
        // one untimed round of the same shapes with other prompts (no prefix-cache hits in the timed round):
        // the first steps of each shape pay for cuBLAS and attention kernel selection (and, with a mix, the
        // first masks of every schema state the timed round will meet)
        var warmUp = MakeRequests(options with { Seed = options.Seed + 1 }, info, options.StructuredOutputMix);
        await RunOnceAsync(engine, warmUp.Select(r => r with { RequestId = "warmup-" + r.RequestId }).ToList());
        var free = await TimedRoundAsync(engine, options, info, mix: 0, info.Pooler is null ? "unconstrained" : "embeddings");
        if (options.StructuredOutputMix > 0)
        {
            var constrained = await TimedRoundAsync(engine, options with { Seed = options.Seed + 2 }, info,
                options.StructuredOutputMix, $"{options.StructuredOutputMix:P0} JSON-schema requests");
            AnsiConsole.MarkupLine($"[bold]constrained / unconstrained output tok/s: {constrained / free:P1}[/]");
        }
        return 0;
    }

    /// Runs one round and reports it; returns its output tokens per second.
    static async Task<double> TimedRoundAsync(LlmEngine engine, EngineBenchmarkOptions options, ModelInfo info, double mix, string label)
    {
        var requests = MakeRequests(options, info, mix);
        var before = engine.GetStats();
        var clock = Stopwatch.StartNew();
        var latencies = await RunOnceAsync(engine, requests);
        var elapsed = clock.Elapsed;
        AnsiConsole.MarkupLine($"[bold]{label}[/]");
        return Report(options, before, engine.GetStats(), elapsed, latencies);
    }

    /// Greedy requests of random prompts; the first mix * N of every hundred are constrained to a JSON Schema.
    /// EOS is ignored, so constrained and free requests run the same number of steps (a finished grammar
    /// allows only EOS, which then repeats): the difference between two rounds is the cost of the masks. Under the
    /// pooling runner each request is an embedding of its prompt, pooled by the engine's pooler config.
    static List<GenerationRequest> MakeRequests(EngineBenchmarkOptions options, ModelInfo info, double mix)
    {
        var random = new Random(options.Seed);
        return Enumerable.Range(0, options.NumPrompts).Select(i => new GenerationRequest
        {
            RequestId = $"bench-{i}",
            PromptTokenIds = Enumerable.Range(0, options.InputLength).Select(_ => random.Next(info.VocabSize)).ToArray(),
            Pooling = info.Pooler?.Params(),
            Sampling = info.Pooler is not null ? SamplingParams.Greedy : SamplingParams.Greedy with
            {
                MaxTokens = options.OutputLength,
                IgnoreEos = true,
                StructuredOutputs = i % 100 < mix * 100 ? StructuredOutputMix.For(i) : null,
            },
        }).ToList();
    }

    /// Submits every request at once; returns each one's latency and time to first token.
    static async Task<(TimeSpan Ttft, TimeSpan Total)[]> RunOnceAsync(ILlmEngine engine, IReadOnlyList<GenerationRequest> requests) =>
        await Task.WhenAll(requests.Select(async request =>
        {
            var clock = Stopwatch.StartNew();
            TimeSpan? ttft = null;
            await foreach (var _ in engine.GenerateAsync(request, CancellationToken.None))
                ttft ??= clock.Elapsed;
            return (ttft ?? clock.Elapsed, clock.Elapsed);
        }));

    static double Report(EngineBenchmarkOptions options, EngineStats before, EngineStats after, TimeSpan elapsed,
        (TimeSpan Ttft, TimeSpan Total)[] latencies)
    {
        var steps = after.Steps - before.Steps;
        var generated = after.GenerationTokens - before.GenerationTokens;
        var prompt = (long)options.NumPrompts * options.InputLength;
        var table = new Table().AddColumns("measure", "value");
        var pooling = options.Engine.Runner == Serving.Engine.Pooling.RunnerType.Pooling;
        table.AddRow("requests", pooling ? $"{options.NumPrompts} embeddings of {options.InputLength}-token prompts"
            : $"{options.NumPrompts} x ({options.InputLength} prompt + {options.OutputLength} output tokens)");
        table.AddRow("wall time", $"{elapsed.TotalSeconds:F2} s");
        if (pooling) table.AddRow("prompt tokens/s", $"{prompt / elapsed.TotalSeconds:F1}");
        else table.AddRow("output tokens/s", $"{generated / elapsed.TotalSeconds:F1}");
        table.AddRow("total tokens/s", $"{(generated + prompt) / elapsed.TotalSeconds:F1}");
        table.AddRow("requests/s", $"{options.NumPrompts / elapsed.TotalSeconds:F2}");
        table.AddRow("engine steps", $"{steps} (mean {elapsed.TotalMilliseconds / Math.Max(1, steps):F2} ms/step)");
        var (schedule, execute, postprocess) = (after.SchedulingTime - before.SchedulingTime, after.ExecutionTime - before.ExecutionTime,
            after.PostprocessingTime - before.PostprocessingTime);
        var stepTotal = (schedule + execute + postprocess).TotalMilliseconds;
        double PerStep(TimeSpan t) => t.TotalMilliseconds / Math.Max(1, steps);
        table.AddRow("host work per step", $"schedule {PerStep(schedule):F2} + postprocess {PerStep(postprocess):F2} ms " +
            $"({(schedule + postprocess).TotalMilliseconds / Math.Max(1e-9, stepTotal):P1} of the steps' time; execute {PerStep(execute):F2} ms)");
        table.AddRow("preemptions", $"{after.Preemptions - before.Preemptions}");
        if (options.Engine.SpeculativeConfig is { } speculative)
        {
            var (drafts, drafted, accepted) = (after.Speculation.NumDrafts - before.Speculation.NumDrafts,
                after.Speculation.NumDraftTokens - before.Speculation.NumDraftTokens, after.Speculation.NumAcceptedTokens - before.Speculation.NumAcceptedTokens);
            table.AddRow("speculative decoding", $"{speculative}: {drafts} checks, {accepted} of {drafted} draft tokens kept " +
                $"({(drafted == 0 ? 0 : (double)accepted / drafted):P1}); {(double)generated / Math.Max(1, steps):F2} tokens per step");
        }
        table.AddRow("TTFT p50 / p99", $"{Percentile(latencies.Select(l => l.Ttft), 50):F1} / {Percentile(latencies.Select(l => l.Ttft), 99):F1} ms");
        table.AddRow("latency p50 / p99", $"{Percentile(latencies.Select(l => l.Total), 50):F1} / {Percentile(latencies.Select(l => l.Total), 99):F1} ms");
        AnsiConsole.Write(table);
        return generated / elapsed.TotalSeconds;
    }

    static double Percentile(IEnumerable<TimeSpan> values, double percentile)
    {
        var sorted = values.Select(v => v.TotalMilliseconds).Order().ToArray();
        var rank = percentile / 100 * (sorted.Length - 1);
        var (low, high) = ((int)Math.Floor(rank), (int)Math.Ceiling(rank));
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }
}
