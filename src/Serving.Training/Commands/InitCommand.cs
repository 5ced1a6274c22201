using System.CommandLine;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Training.Checkpoints;
using Spectre.Console;

namespace Serving.Training.Commands;

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
        foreach (var option in new Option[] { shape, output, seed, list }) command.Options.Add(option);
        command.SetAction(parse => parse.GetValue(list) ? List()
            : Run(CheckpointShapes.Get(parse.GetValue(shape)!), parse.GetValue(output) ?? throw new ArgumentException("init needs --output DIR"), parse.GetValue(seed)));
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

    public static int Run(CheckpointShape shape, string output, int seed)
    {
        AnsiConsole.MarkupLine($"writing [bold]{shape.Name}[/] ({Markup.Escape(shape.Description)}) to {Markup.Escape(output)}");
        AnsiConsole.Status().Start("weights", status =>
            RandomCheckpoint.Write(shape, output, seed, new InlineProgress<string>(step => status.Status(Markup.Escape(step)))));
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(output)}[/]");
        return 0;
    }
}
