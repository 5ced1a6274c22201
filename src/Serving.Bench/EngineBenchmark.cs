using System.Diagnostics;
using Serving.Engine;
using Serving.Engine.Sampling;
using Spectre.Console;

namespace Serving.Bench;

/// The offline engine benchmark: pushes N requests of random token ids through a real LlmEngine at
/// once and reports throughput, step times and request latencies. Works on CPU with a fixture checkpoint
/// and on CUDA with a preset.
internal sealed record EngineBenchmarkOptions(
    EngineOptions Engine, int NumPrompts, int InputLength, int OutputLength, int Seed);

internal static class EngineBenchmark
{
    public static async Task<int> RunAsync(EngineBenchmarkOptions options)
    {
        await using var engine = new LlmEngine(options.Engine);
        await engine.WaitUntilReadyAsync(CancellationToken.None);
        var info = engine.Info;
        AnsiConsole.MarkupLine($"[bold]{info.ModelType}[/] {info.NumAttentionHeads} heads / {info.NumKeyValueHeads} KV heads, " +
            $"{info.Dtype} on {info.Device}; KV {info.KVBytesPerToken} B/token, {info.KVCapacityTokens} tokens in {info.NumKVBlocks} blocks");
        // one untimed round of the same shapes with other prompts (no prefix-cache hits in the timed round):
        // the first steps of each shape pay for cuBLAS and attention kernel selection
        var warmUp = MakeRequests(options with { Seed = options.Seed + 1 }, info.VocabSize);
        await RunOnceAsync(engine, warmUp.Select(r => r with { RequestId = "warmup-" + r.RequestId }).ToList());
        var requests = MakeRequests(options, info.VocabSize);
        var before = engine.GetStats();
        var clock = Stopwatch.StartNew();
        var latencies = await RunOnceAsync(engine, requests);
        var elapsed = clock.Elapsed;
        Report(options, before, engine.GetStats(), elapsed, latencies);
        return 0;
    }

    static List<GenerationRequest> MakeRequests(EngineBenchmarkOptions options, int vocabSize)
    {
        var random = new Random(options.Seed);
        return Enumerable.Range(0, options.NumPrompts).Select(i => new GenerationRequest
        {
            RequestId = $"bench-{i}",
            PromptTokenIds = Enumerable.Range(0, options.InputLength).Select(_ => random.Next(vocabSize)).ToArray(),
            Sampling = SamplingParams.Greedy with { MaxTokens = options.OutputLength, IgnoreEos = true },
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

    static void Report(EngineBenchmarkOptions options, EngineStats before, EngineStats after, TimeSpan elapsed,
        (TimeSpan Ttft, TimeSpan Total)[] latencies)
    {
        var steps = after.Steps - before.Steps;
        var generated = after.GenerationTokens - before.GenerationTokens;
        var prompt = (long)options.NumPrompts * options.InputLength;
        var table = new Table().AddColumns("measure", "value");
        table.AddRow("requests", $"{options.NumPrompts} x ({options.InputLength} prompt + {options.OutputLength} output tokens)");
        table.AddRow("wall time", $"{elapsed.TotalSeconds:F2} s");
        table.AddRow("output tokens/s", $"{generated / elapsed.TotalSeconds:F1}");
        table.AddRow("total tokens/s", $"{(generated + prompt) / elapsed.TotalSeconds:F1}");
        table.AddRow("requests/s", $"{options.NumPrompts / elapsed.TotalSeconds:F2}");
        table.AddRow("engine steps", $"{steps} (mean {elapsed.TotalMilliseconds / Math.Max(1, steps):F2} ms/step)");
        table.AddRow("preemptions", $"{after.Preemptions - before.Preemptions}");
        table.AddRow("TTFT p50 / p99", $"{Percentile(latencies.Select(l => l.Ttft), 50):F1} / {Percentile(latencies.Select(l => l.Ttft), 99):F1} ms");
        table.AddRow("latency p50 / p99", $"{Percentile(latencies.Select(l => l.Total), 50):F1} / {Percentile(latencies.Select(l => l.Total), 99):F1} ms");
        AnsiConsole.Write(table);
    }

    static double Percentile(IEnumerable<TimeSpan> values, double percentile)
    {
        var sorted = values.Select(v => v.TotalMilliseconds).Order().ToArray();
        var rank = percentile / 100 * (sorted.Length - 1);
        var (low, high) = ((int)Math.Floor(rank), (int)Math.Ceiling(rank));
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }
}
