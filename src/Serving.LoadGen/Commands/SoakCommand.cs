using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Serving.LoadGen.Soak;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `soak`: hours of mixed traffic against one server (both APIs, short and long prompts, n > 1, stop strings,
/// about a fifth of the streams abandoned), reporting at every interval, then whether the server stayed healthy:
/// no 5xx, KV usage back to 0 once idle, and with --server-pid flat memory and thread count. Exit code 1 if not.
internal static class SoakCommand
{
    public static Command Create()
    {
        var command = new Command("soak", "Long mixed-traffic run against one server; checks it stays healthy (no 5xx, KV freed, flat RSS and threads).");
        var url = new Option<string>("--base-url") { Description = "OpenAI HTTP address.", DefaultValueFactory = _ => "http://localhost:8000" };
        var grpcUrl = new Option<string?>("--grpc-url") { Description = "gRPC address (the server's --grpc-port); without it only HTTP is used." };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer key." };
        var model = new Option<string?>("--model") { Description = "Served model name (default: the server's first model)." };
        var duration = new Option<string>("--duration") { Description = "How long: 90s, 30m, 1h.", DefaultValueFactory = _ => "1h" };
        var concurrency = new Option<int>("--concurrency") { Description = "Requests in flight at once.", DefaultValueFactory = _ => 8 };
        var interval = new Option<string>("--report-interval") { Description = "Time between samples: 10s, 1m.", DefaultValueFactory = _ => "1m" };
        var abandon = new Option<double>("--abandon-fraction") { Description = "Share of streams the client abandons mid-way.", DefaultValueFactory = _ => 0.2 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var pid = new Option<int?>("--server-pid") { Description = "The server's process id, to sample its RSS and threads (same machine)." };
        var result = new Option<string?>("--result-file") { Description = "Write the samples and counts as JSON here." };
        foreach (var option in new Option[] { url, grpcUrl, apiKey, model, duration, concurrency, interval, abandon, seed, pid, result })
            command.Options.Add(option);
        command.SetAction((parse, ct) => RunAsync(new SoakOptions(
            new Uri(parse.GetValue(url)!), parse.GetValue(grpcUrl) is { } g ? new Uri(g) : null, parse.GetValue(apiKey), parse.GetValue(model),
            ParseDuration(parse.GetValue(duration)!), parse.GetValue(concurrency), ParseDuration(parse.GetValue(interval)!),
            parse.GetValue(abandon), parse.GetValue(seed), parse.GetValue(pid)), parse.GetValue(result), ct));
        return command;
    }

    public static async Task<int> RunAsync(SoakOptions options, string? resultFile, CancellationToken cancellationToken)
    {
        var report = await new SoakRunner(options).RunAsync(PrintSample, cancellationToken);
        PrintSummary(report);
        if (resultFile is not null)
            await File.WriteAllTextAsync(resultFile, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }), cancellationToken);
        var failures = SoakVerdict.Failures(report);
        foreach (var failure in failures) AnsiConsole.MarkupLine($"[red]FAIL[/] {Markup.Escape(failure)}");
        if (failures.Count == 0) AnsiConsole.MarkupLine("[green]soak passed[/]");
        return failures.Count == 0 ? 0 : 1;
    }

    static void PrintSample(SoakSample s) => AnsiConsole.MarkupLine(Markup.Escape(
        $"{TimeSpan.FromSeconds(s.ElapsedSeconds):hh\\:mm\\:ss}  requests {s.Requests}  5xx {s.ServerErrors}  KV {s.KVUsage:P1}  " +
        $"running {s.Running}  waiting {s.Waiting}" + (s.RssBytes is { } rss ? $"  RSS {rss >> 20} MiB  threads {s.Threads}" : "")));

    static void PrintSummary(SoakReport report)
    {
        var table = new Table().Title("soak").AddColumns("", "value");
        table.AddRow("requests", $"{report.Requests}");
        foreach (var (result, count) in report.Results.OrderBy(p => p.Key)) table.AddRow($"  {result}", $"{count}");
        foreach (var (api, count) in report.Apis.OrderBy(p => p.Key)) table.AddRow($"  via {api}", $"{count}");
        table.AddRow("  with n > 1", $"{report.MultiSequenceRequests}");
        table.AddRow("  with stop strings", $"{report.RequestsWithStops}");
        table.AddRow("idle after: KV usage, running, waiting", $"{report.Idle.KVUsage:P1}, {report.Idle.Running}, {report.Idle.Waiting}");
        if (SoakVerdict.Points(report) is { } points)
        {
            foreach (var (name, point) in new[] { "start", "middle", "end" }.Zip(points))
                table.AddRow($"{name} ({TimeSpan.FromSeconds(point.ElapsedSeconds):hh\\:mm\\:ss})", $"RSS {point.RssBytes >> 20} MiB, {point.Threads} threads");
        }
        AnsiConsole.Write(table);
        foreach (var example in report.ErrorExamples.Take(5)) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(example)}[/]");
    }

    /// "90s", "30m", "1h" (or plain seconds).
    internal static TimeSpan ParseDuration(string text)
    {
        var unit = text[^1];
        var number = char.IsDigit(unit) ? text : text[..^1];
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0)
            throw new ArgumentException($"'{text}' is not a duration such as 90s, 30m or 1h");
        return unit switch
        {
            'h' => TimeSpan.FromHours(value),
            'm' => TimeSpan.FromMinutes(value),
            's' or (>= '0' and <= '9') => TimeSpan.FromSeconds(value),
            _ => throw new ArgumentException($"'{text}' is not a duration such as 90s, 30m or 1h"),
        };
    }
}
