using System.CommandLine;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.LoadGen.Checkpoints;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `init`: a random-weight checkpoint of a named shape with a generated tokenizer, for benchmarks without downloads.
internal static class InitCommand
{
    public static Command Create()
    {
        var command = new Command("init", "Write a random-weight checkpoint of a named shape: " +
            string.Join(", ", CheckpointShapes.All.Select(s => s.Name)) + ".");
        var shape = new Option<string>("--shape") { Description = "Shape name (--list shows them).", DefaultValueFactory = _ => "tiny-gqa" };
        var output = new Option<string?>("--output") { Description = "Folder to write the checkpoint to." };
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 0 };
        var list = new Option<bool>("--list") { Description = "List the shapes and exit." };
        var tokenizerOnly = new Option<bool>("--tokenizer-only")
        {
            Description = "Write only the shape's tokenizer (for a preset model on the GPU, e.g. the engine bench's --tokenizer).",
        };
        foreach (var option in new Option[] { shape, output, seed, list, tokenizerOnly }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            if (parse.GetValue(list)) return List();
            var chosen = CheckpointShapes.Get(parse.GetValue(shape)!);
            var folder = parse.GetValue(output) ?? throw new ArgumentException("init needs --output DIR");
            return parse.GetValue(tokenizerOnly) ? WriteTokenizer(chosen, folder) : Run(chosen, folder, parse.GetValue(seed));
        });
        return command;
    }

    static int List()
    {
        var table = new Table().AddColumn("shape").AddColumn("heads / KV heads").AddColumn("KV bytes/token").AddColumn("description");
        foreach (var s in CheckpointShapes.All)
        {
            var kvBytes = KVCacheSpec.For(s.Config, ModelDtype.Parse(s.Config.Dtype ?? "float32")).BytesPerToken;
            table.AddRow(s.Name, $"{s.Config.NumAttentionHeads} / {s.Config.NumKeyValueHeads}", $"{kvBytes:N0}", Markup.Escape(s.Description));
        }
        AnsiConsole.Write(table);
        return 0;
    }

    public static int WriteTokenizer(CheckpointShape shape, string output)
    {
        Directory.CreateDirectory(output);
        ByteLevelBpeTokenizer.Write(output, shape.Config.VocabSize, shape.NumSpecialTokens, shape.Config.MaxPositionEmbeddings);
        AnsiConsole.MarkupLine($"wrote the {shape.Config.VocabSize}-token tokenizer of [bold]{shape.Name}[/] to [green]{Markup.Escape(output)}[/]");
        return 0;
    }

    public static int Run(CheckpointShape shape, string output, int seed)
    {
        AnsiConsole.MarkupLine($"writing [bold]{shape.Name}[/] ({Markup.Escape(shape.Description)}) to {Markup.Escape(output)}");
        AnsiConsole.Status().Start("weights", status =>
            RandomCheckpoint.Write(shape, output, seed, new InlineProgress<string>(step => status.Status(Markup.Escape(step)))));
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(output)}[/]");
        return 0;
    }
}
