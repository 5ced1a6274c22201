using System.Globalization;
using System.Text;
using ScottPlot;
using Serving.Plotting;
using Serving.Training.Reports;

namespace Serving.Training.Experiment;

/// The experiment's tables and charts from results.json and the engine benchmark: the analogue of the paper's
/// Table 1 (quality and decode time per variant), Figure 4 (conversion methods), Figure 5 (alpha) and Figure 6
/// (KV heads against decode time), with each ordering stated as measured. Writes results.md and PNGs.
internal sealed class ExperimentReport(ExperimentResults results, IReadOnlyList<DecodeTiming> timings, ExperimentPlan plan)
{
    static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "results.md"), Markdown());
        Figure4(Path.Combine(directory, "figure4-methods.png"));
        Figure5(Path.Combine(directory, "figure5-alpha.png"));
        if (timings.Count > 0) Figure6(Path.Combine(directory, "figure6-groups-time.png"));
    }

    VariantResult? Get(string name) => results.Find(name);
    VariantResult? Main(int groups, string method) => Get(ExperimentPlan.Name(groups, method, plan.MainAlpha));
    DecodeTiming? Timing(int kvHeads) => timings.FirstOrDefault(t => KVHeadsOf(t.Variant) == kvHeads);
    int? KVHeadsOf(string variant) => results.Find(variant)?.NumKVHeads;

    public string Markdown()
    {
        var text = new StringBuilder();
        var teacher = Get("mha");
        text.AppendLine(F($"Model: `{results.Shape}` ({results.NumParameters / 1e6:F1}M parameters as MHA), {results.PretrainingSteps} pretraining steps of {results.BatchSize} x {results.SequenceLength} tokens, {results.ComputeDtype} on {results.Device}."));
        text.AppendLine();
        text.AppendLine(TimingHeader("### Table 1: quality and decode time (uptrained with alpha = " + F($"{Percent(plan.MainAlpha)}") + ")"));
        text.AppendLine("| model | KV heads | held-out perplexity | vs MHA | decode step ms | decode tok/s | KV bytes/token | steps |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        var rows = new List<VariantResult?> { teacher };
        rows.AddRange(plan.Groups.Select(g => Main(g, "mean-pool")));
        rows.Add(Get($"gqa{plan.SweepGroups}-scratch"));
        foreach (var row in rows.OfType<VariantResult>())
        {
            var timing = Timing(row.NumKVHeads);
            var label = row.Method switch { "mha" => "MHA (teacher)", "scratch" => $"GQA-{row.NumKVHeads} from scratch", _ => $"{Label(row.NumKVHeads)} uptrained" };
            text.AppendLine(F($"| {label} | {row.NumKVHeads} | {row.Perplexity:F3} | {Relative(row, teacher)} | {timing?.StepMs:F2} | {timing?.TokensPerSecond:F0} | {timing?.KVBytesPerToken} | {row.Steps} |"));
        }
        text.AppendLine();
        text.AppendLine("### Figure 4: conversion methods (held-out perplexity; alpha = 0 is the conversion before uptraining)");
        text.AppendLine("| KV heads | method | alpha = 0 | alpha = " + F($"{Percent(plan.MainAlpha)}") + " |");
        text.AppendLine("| --- | --- | --- | --- |");
        foreach (var g in plan.Groups)
            foreach (var m in plan.Methods)
                text.AppendLine(F($"| {Label(g)} | {m} | {Get(ExperimentPlan.Name(g, m, 0))?.Perplexity:F3} | {Main(g, m)?.Perplexity:F3} |"));
        text.AppendLine();
        text.AppendLine(F($"### Figure 5: uptraining proportion (mean-pooled {Label(plan.SweepGroups)})"));
        text.AppendLine("| alpha | uptraining steps | held-out perplexity |");
        text.AppendLine("| --- | --- | --- |");
        foreach (var (alpha, result) in Sweep())
            text.AppendLine(F($"| {Percent(alpha)} | {(alpha == 0 ? 0 : plan.Uptraining(alpha).Steps)} | {result?.Perplexity:F3} |"));
        text.AppendLine();
        text.AppendLine("### Orderings, as measured");
        foreach (var line in Orderings()) text.AppendLine("- " + line);
        return text.ToString();
    }

    string TimingHeader(string title) => timings.Count == 0 ? title + " (no benchmark file: decode columns empty)"
        : title + F($"; decode: engine benchmark, batch {timings[0].Batch}, context {timings[0].Context}");

    IEnumerable<(double Alpha, VariantResult? Result)> Sweep() =>
        new[] { 0.0 }.Concat(plan.SweepAlphas).Append(plan.MainAlpha).Distinct().Order()
            .Select(a => (a, Get(ExperimentPlan.Name(plan.SweepGroups, "mean-pool", a))));

    IEnumerable<string> Orderings()
    {
        foreach (var g in plan.Groups)
        {
            var ranked = plan.Methods.Select(m => (m, Main(g, m))).Where(p => p.Item2 is not null).OrderBy(p => p.Item2!.Perplexity).ToList();
            if (ranked.Count == plan.Methods.Count)
                yield return F($"{Label(g)}, methods at alpha {Percent(plan.MainAlpha)} (best first): {string.Join(" < ", ranked.Select(p => F($"{p.m} {p.Item2!.Perplexity:F3}")))}") +
                    (ranked.Select(p => p.m).SequenceEqual(plan.Methods) ? " (the paper's order)" : " (not the paper's mean-pool > first-head > random)");
        }
        var sweep = Sweep().Where(p => p.Result is not null).ToList();
        if (sweep.Count > 1)
        {
            var falling = sweep.Zip(sweep.Skip(1)).All(p => p.Second.Result!.Perplexity <= p.First.Result!.Perplexity);
            yield return F($"alpha: {string.Join(", ", sweep.Select(p => F($"{Percent(p.Alpha)} -> {p.Result!.Perplexity:F3}")))}") +
                (falling ? " (quality improves with every increase of alpha, as in the paper)" : " (not monotone)");
        }
        var timed = new[] { 8, 4, 2, 1 }.Select(h => (h, Timing(h))).Where(p => p.Item2 is not null).ToList();
        if (timed.Count > 1)
            yield return F($"decode time per step by KV heads: {string.Join(", ", timed.Select(p => F($"{p.h} -> {p.Item2!.StepMs:F2} ms")))}");
        if (Get("mha") is { } t && Main(plan.SweepGroups, "mean-pool") is { } u && Get($"gqa{plan.SweepGroups}-scratch") is { } s)
            yield return F($"uptrained {Label(plan.SweepGroups)} {u.Perplexity:F3} vs from scratch {s.Perplexity:F3} (same total steps) vs MHA {t.Perplexity:F3}");
    }

    static string Relative(VariantResult row, VariantResult? teacher) =>
        teacher is null || row.Method == "mha" ? "" : F($"{(row.Perplexity / teacher.Perplexity - 1) * 100:+0.0;-0.0}%");

    static string Percent(double alpha) => F($"{alpha * 100:0.#}%");

    static string Label(int kvHeads) => kvHeads == 1 ? "MQA" : $"GQA-{kvHeads}";

    void Figure4(string path)
    {
        ChartFont.Use();
        var plot = new Plot();
        var colors = new[] { Colors.C0, Colors.C1, Colors.C2 };
        var ticks = new List<Tick>();
        for (var gi = 0; gi < plan.Groups.Count; gi++)
        {
            ticks.Add(new Tick(gi * 4 + 1, Label(plan.Groups[gi])));
            for (var mi = 0; mi < plan.Methods.Count; mi++)
                if (Main(plan.Groups[gi], plan.Methods[mi]) is { } r)
                {
                    var bar = plot.Add.Bar(position: gi * 4 + mi, value: r.Perplexity);
                    bar.Color = colors[mi % colors.Length];
                }
        }
        for (var mi = 0; mi < plan.Methods.Count; mi++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = plan.Methods[mi], FillColor = colors[mi % colors.Length] });
        if (Get("mha") is { } teacher) plot.Add.HorizontalLine(teacher.Perplexity, pattern: LinePattern.Dashed).LegendText = "MHA teacher";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Title(F($"Conversion methods, uptrained alpha = {Percent(plan.MainAlpha)}"));
        plot.YLabel("held-out perplexity (lower is better)");
        plot.ShowLegend(Alignment.UpperLeft);
        ChartFont.Save(plot, path);
    }

    void Figure5(string path)
    {
        ChartFont.Use();
        var plot = new Plot();
        var points = Sweep().Where(p => p.Result is not null).ToList();
        var line = plot.Add.Scatter(points.Select(p => p.Alpha * 100).ToArray(), points.Select(p => p.Result!.Perplexity).ToArray());
        line.LegendText = F($"mean-pooled {Label(plan.SweepGroups)}");
        if (Get("mha") is { } teacher) plot.Add.HorizontalLine(teacher.Perplexity, pattern: LinePattern.Dashed).LegendText = "MHA teacher";
        if (Get($"gqa{plan.SweepGroups}-scratch") is { } scratch)
            plot.Add.HorizontalLine(scratch.Perplexity, pattern: LinePattern.Dotted).LegendText = F($"{Label(plan.SweepGroups)} from scratch");
        plot.Title("Uptraining proportion");
        plot.XLabel("alpha (% of pretraining steps)");
        plot.YLabel("held-out perplexity");
        plot.ShowLegend(Alignment.UpperRight);
        ChartFont.Save(plot, path);
    }

    void Figure6(string path)
    {
        ChartFont.Use();
        var plot = new Plot();
        var points = new[] { 1, 2, 4, 8 }.Select(h => (h, Timing(h))).Where(p => p.Item2 is not null).ToList();
        var line = plot.Add.Scatter(points.Select(p => (double)p.h).ToArray(), points.Select(p => p.Item2!.StepMs).ToArray());
        line.LegendText = F($"decode step, batch {timings[0].Batch}, context {timings[0].Context}");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(points.Select(p => new Tick(p.h, p.h == 8 ? "8 (MHA)" : p.h == 1 ? "1 (MQA)" : $"{p.h}")).ToArray());
        plot.Title("Decode time against KV heads (GQA groups)");
        plot.XLabel("KV heads");
        plot.YLabel("ms per decode step");
        plot.ShowLegend(Alignment.UpperLeft);
        ChartFont.Save(plot, path);
    }
}
