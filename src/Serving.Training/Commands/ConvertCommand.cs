using System.CommandLine;
using Serving.Engine.Config;
using Serving.Engine.Conversion;
using Serving.Engine.Model;
using Serving.Engine.Tokenization;
using Serving.Training.Checkpoints;
using Spectre.Console;

namespace Serving.Training.Commands;

/// `convert`: an MHA (or GQA) checkpoint to GQA-G (the engine's GqaConversion) by mean-pooling each group's K/V
/// heads, or by the paper's ablations (first head, random), and optionally the perplexity of both models on a
/// text, so the quality cost is measured beside the speed gain.
internal static class ConvertCommand
{
    public static Command Create()
    {
        var command = new Command("convert", "Write a GQA-G (G=1: MQA) checkpoint from an MHA one (mean-pooled key/value heads by default).");
        var source = new Option<string>("--model") { Description = "Source checkpoint folder.", Required = true };
        var output = new Option<string>("--output") { Description = "Folder to write the converted checkpoint to.", Required = true };
        var groups = new Option<int>("--num-kv-heads") { Description = "G: key/value heads after conversion (must divide the source's).", Required = true };
        var evalText = new Option<string?>("--eval-text") { Description = "Text file: report the perplexity of both models on it." };
        var window = new Option<int?>("--eval-window") { Description = "Tokens per perplexity window (default max_position_embeddings)." };
        var init = new Option<string>("--init")
        {
            Description = "How each group's K/V head is made: mean-pool (the paper's method), first-head or random (its ablations).",
            DefaultValueFactory = _ => "mean-pool",
        };
        init.AcceptOnlyFromAmong(InitNames.Keys.ToArray());
        var seed = new Option<long>("--seed") { Description = "Seed of --init random.", DefaultValueFactory = _ => 0 };
        foreach (var option in new Option[] { source, output, groups, init, seed, evalText, window }) command.Options.Add(option);
        command.SetAction(parse => Run(parse.GetValue(source)!, parse.GetValue(output)!, parse.GetValue(groups), parse.GetValue(evalText), parse.GetValue(window),
            InitNames[parse.GetValue(init)!], parse.GetValue(seed)));
        return command;
    }

    /// --init values: the paper's names for KVHeadInit.
    public static IReadOnlyDictionary<string, KVHeadInit> InitNames { get; } = new Dictionary<string, KVHeadInit>
    {
        ["mean-pool"] = KVHeadInit.MeanPool, ["first-head"] = KVHeadInit.FirstHead, ["random"] = KVHeadInit.Random,
    };

    public static int Run(string source, string output, int numGroups, string? evalText, int? window, KVHeadInit init = KVHeadInit.MeanPool, long seed = 0)
    {
        var config = ModelConfig.Load(source);
        AnsiConsole.MarkupLine($"converting [bold]{Markup.Escape(source)}[/]: {config.NumAttentionHeads} query heads, " +
            $"{config.NumKeyValueHeads} -> {numGroups} key/value heads ({InitNames.First(p => p.Value == init).Key})");
        AnsiConsole.Progress().Start(context =>
        {
            var task = context.AddTask("weights", maxValue: 1);
            GqaConversion.ConvertCheckpoint(source, output, numGroups,
                new InlineProgress<Engine.Weights.WeightLoadProgress>(p => task.Value = p.Fraction), init, seed);
            task.Value = 1;
        });
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(output)}[/] (num_key_value_heads = {numGroups})");
        if (evalText is null) return 0;
        var results = EvaluateBoth(source, output, File.ReadAllText(evalText), window);
        var table = new Table().AddColumn("model").AddColumn("KV heads").AddColumn(new TableColumn("perplexity").RightAligned())
            .AddColumn(new TableColumn("tokens").RightAligned());
        foreach (var (name, heads, result) in results)
            table.AddRow(Markup.Escape(name), $"{heads}", $"{result.Perplexity:0.0000}", $"{result.NumPredicted}");
        AnsiConsole.Write(table);
        return 0;
    }

    /// Perplexity of the source and the converted checkpoint on the same tokens (the source's tokenizer).
    public static IReadOnlyList<(string Name, int KVHeads, PerplexityResult Result)> EvaluateBoth(string source, string converted,
        string text, int? window)
    {
        var tokens = TextTokenizer.Load(source).Encode(text);
        return [.. new[] { source, converted }.Select(dir =>
        {
            using var model = ModelLoader.Load(dir, "float32");
            var length = window ?? model.Config.MaxContextLength;
            return (dir, model.Config.NumKeyValueHeads, Perplexity.Evaluate(model, tokens, length));
        })];
    }
}
