using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace Serving.Bench;

/// Prints a run's measurements as tables (decode against its bandwidth floor, prefill against the matmul
/// rate, capacity) and writes the same numbers as JSON.
internal static class ReportWriter
{
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
    };

    public static void PrintChecks(IEnumerable<CheckResult> checks)
    {
        var table = new Table().Title("fused kernels vs plain ops").AddColumns("check", "dtype", "rel. error", "max abs", "tolerance", "");
        foreach (var c in checks)
        {
            table.AddRow(Markup.Escape(c.Name), c.Dtype, $"{c.RelativeError:E2}", $"{c.MaxAbsError:E2}", $"{c.Tolerance:E0}", c.Passed ? "[green]ok[/]" : "[red]FAIL[/]");
        }

        AnsiConsole.Write(table);
    }

    public static void Print(BenchReport report)
    {
        if (report.Fixtures.Count > 0)
        {
            var fixtures = new Table().Title("reference checkpoints on the device (float32: logits within 1e-3 and 16/16 greedy)")
                .AddColumns("fixture", "dtype", "fused", "prompt", "max logit error", "greedy tokens");
            foreach (var f in report.Fixtures)
            {
                fixtures.AddRow(f.Model, $"{f.Dtype} + {f.KVCacheDtype} KV", f.FusedKernels ? "yes" : "no", $"{f.Prompt}", $"{f.MaxLogitError:E2}", $"{f.GreedyMatches}/16");
            }

            AnsiConsole.Write(fixtures);
        }

        AnsiConsole.MarkupLine($"device {Markup.Escape(report.Device)}, {report.Dtype}: copy bandwidth {report.BandwidthGBs:F0} GB/s, matmul {report.MatmulTflops:F0} TFLOP/s");
        var decode = new Table().Title("decode step (roofline floor: per part, the longer of its bytes / bandwidth and its FLOPs / matmul rate)")
            .AddColumns("model", "path", "batch", "ctx", "step ms", "tok/s", "KV GB/step", "floor ms", "of floor", "attn ms", "attn share");
        foreach (var d in report.Decode)
        {
            decode.AddRow(Markup.Escape(d.Model), d.Path, $"{d.Batch}", $"{d.ContextLength}", $"{d.StepMs:F2}", $"{d.TokensPerSecond:F0}", $"{d.KVBytesRead / 1e9:F2}",
                $"{d.FloorMs:F2}", $"{d.FractionOfFloor:P0}", d.AttentionMs is { } a ? $"{a:F2}" : "-", d.AttentionShare is { } s ? $"{s:P0}" : "-");
        }

        var prefill = new Table().Title("prefill step (fraction of the measured matmul rate)")
            .AddColumns("model", "path", "batch x len", "step ms", "tok/s", "TFLOP/s", "of matmul");
        foreach (var p in report.Prefill)
        {
            prefill.AddRow(Markup.Escape(p.Model), p.Path, $"{p.Batch} x {p.PromptLength}", $"{p.StepMs:F1}", $"{p.TokensPerSecond:F0}", $"{p.Teraflops:F0}", $"{p.FractionOfMatmulRate:P0}");
        }

        var generate = new Table().Title("generate(): prompt 512, 128 new tokens (transformers bf16 sdpa on the H200: 14.5 tok/s at batch 1, 878 at 64)")
            .AddColumns("model", "path", "batch", "total ms", "new tok/s");
        foreach (var g in report.Generate)
        {
            generate.AddRow(Markup.Escape(g.Model), g.Path, $"{g.Batch}", $"{g.TotalMs:F0}", $"{g.TokensPerSecond:F0}");
        }

        var capacity = new Table().Title("KV capacity").AddColumns("model", "weights GB", "KV bytes/token", "fit length", "sequences that fit");
        foreach (var c in report.Capacity)
        {
            capacity.AddRow(Markup.Escape(c.Model), $"{c.WeightBytes / 1e9:F1}", $"{c.KVBytesPerToken}", $"{c.FitLength}", $"{c.SequencesThatFit}");
        }

        var quality = new Table().Title("FP8 KV cache against a bfloat16 one (same bf16 weights)")
            .AddColumns("case", "positions", "max |logit diff|", "mean |logit diff|", "argmax agreement", "top tokens shared", "within a bf16 step",
                "bf16 top tied", "in FP8's top 5", "median bf16 top-2 gap", "largest gap that flipped");
        foreach (var q in report.KVQuality)
        {
            quality.AddRow(Markup.Escape(q.Case), $"{q.Positions}", $"{q.MaxAbsError:F4}", $"{q.MeanAbsError:F4}", $"{q.ArgmaxAgreement:P2}",
                $"{q.TopSetAgreement:P2}", $"{q.WithinRoundingAgreement:P2}", $"{q.TiedTop:P2}", $"{q.Top5Agreement:P2}", $"{q.MedianTopGap:F4}", $"{q.LargestFlippedGap:F4}");
        }

        AnsiConsole.Write(decode);
        AnsiConsole.Write(prefill);
        AnsiConsole.Write(generate);
        AnsiConsole.Write(capacity);
        if (report.KVQuality.Count > 0)
        {
            AnsiConsole.Write(quality);
        }
        if (report.Linear.Count > 0)
        {
            var linear = new Table().Title("linear layers, back to back in a CUDA graph: the library's default algorithm and tuned (weight bytes read per second)")
                .AddColumns("model", "layer", "weights", "N x K", "tokens", "us per launch", "TB/s", "tuned us", "tuned TB/s");
            foreach (var r in report.Linear)
            {
                linear.AddRow(Markup.Escape(r.Model), r.Layer, r.Weights, $"{r.OutFeatures} x {r.InFeatures}", $"{r.Tokens}", $"{r.Milliseconds * 1e3:F1}",
                    $"{r.BytesPerSecond / 1e12:F2}", $"{r.TunedMilliseconds * 1e3:F1}", $"{r.TunedBytesPerSecond / 1e12:F2}");
            }

            AnsiConsole.Write(linear);
        }

        if (report.Skipped.Count > 0)
        {
            var skipped = new Table().Title("shapes not measured").AddColumns("model", "kind", "shape", "KV GB needed", "KV GB available", "why");
            foreach (var s in report.Skipped)
            {
                skipped.AddRow(s.Model, s.Kind, s.Shape, $"{s.KVBytesNeeded / 1e9:F1}", $"{s.KVBytesAvailable / 1e9:F1}", s.Reason);
            }

            AnsiConsole.Write(skipped);
        }
    }

    public static void WriteJson(BenchReport report, string path) => File.WriteAllText(path, JsonSerializer.Serialize(report, Json));
}
