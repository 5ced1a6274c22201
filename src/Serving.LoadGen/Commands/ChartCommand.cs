using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.LoadGen.Reports;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `chart`: draws the against-the-rate curves of a saved `compare` result again (on another machine than the
/// one that ran the load, say). The latency CDFs need every request's timings, which the result file does not
/// keep: they are drawn only by the run itself.
internal static class ChartCommand
{
    static readonly (string Metric, string Key, string File)[] Curves =
        [("output tok/s", "output_throughput", "throughput"), ("TTFT p99 ms", "p99_ttft_ms", "ttft_p99"), ("TPOT p99 ms", "p99_tpot_ms", "tpot_p99")];

    public static Command Create()
    {
        var resultFile = new Option<string>("--result-file") { Description = "A result JSON written by `compare`.", Required = true };
        var chartDir = new Option<string?>("--chart-dir") { Description = "Where the PNGs go (default: beside the result file)." };
        var command = new Command("chart", "Draw the curves of a saved compare result (metric against request rate) again.") { resultFile, chartDir };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(resultFile)!;
            foreach (var file in Draw(path, parse.GetValue(chartDir) ?? Path.GetDirectoryName(Path.GetFullPath(path))!))
                AnsiConsole.MarkupLine($"wrote {Markup.Escape(file)}");
            return 0;
        });
        return command;
    }

    public static IReadOnlyList<string> Draw(string resultFile, string chartDir)
    {
        var result = JsonNode.Parse(File.ReadAllText(resultFile))!;
        var rates = result["rates"]?.AsArray() ?? throw new ArgumentException($"{resultFile} is not a compare result (no \"rates\")");
        var (labelA, labelB) = (result["label_a"]!.GetValue<string>(), result["label_b"]!.GetValue<string>());
        Directory.CreateDirectory(chartDir);
        return Curves.Select(curve => Charts.VersusRate(chartDir, $"compare_{curve.File}_vs_rate.png", curve.Metric,
            [(labelA, Points(rates, "a", curve.Key)), (labelB, Points(rates, "b", curve.Key))])).ToList();
    }

    /// The finite rates' points; an unbounded rate is written as "inf" and has no place on a rate axis.
    static IReadOnlyList<(double Rate, double Value)> Points(JsonArray rates, string side, string key) =>
        rates.Where(rate => rate!["request_rate"]!.GetValueKind() == JsonValueKind.Number)
            .Select(rate => (Rate: rate!["request_rate"]!.GetValue<double>(), Value: rate[side]![key]!.GetValue<double>())).ToList();
}
