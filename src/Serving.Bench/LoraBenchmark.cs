using System.CommandLine;
using Serving.Engine.Model;
using Serving.Engine.Model.Lora;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// `serving-bench lora`: what LoRA adapters cost a decode step. Each shape is timed with every sequence on the base
/// model, then with the batch spread over k random adapters of the given rank (sequence s on adapter s mod k), all
/// eagerly (a step with adapters never replays a CUDA graph). The adapters' update is the engine's own (LoraStep).
internal static class LoraBenchmark
{
    internal sealed record Options(string Model, string Dtype, string Device, int[] Batches, int[] Contexts, int Rank, int[] Adapters, int Steps);

    /// One timed shape: Adapters 0 is the base model alone.
    internal sealed record Row(int Batch, int Context, int Adapters, double Milliseconds);

    public static Command Command()
    {
        var model = new Option<string>("--model") { Description = "model preset or checkpoint folder", DefaultValueFactory = _ => "llama3-8b" };
        var dtype = new Option<string>("--dtype") { DefaultValueFactory = _ => "bfloat16" };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cuda" };
        var batches = new Option<int[]>("--batch") { DefaultValueFactory = _ => [1, 64], AllowMultipleArgumentsPerToken = true };
        var contexts = new Option<int[]>("--context") { DefaultValueFactory = _ => [512, 2048], AllowMultipleArgumentsPerToken = true };
        var rank = new Option<int>("--rank") { Description = "the adapters' rank", DefaultValueFactory = _ => 16 };
        var adapters = new Option<int[]>("--adapters") { Description = "distinct adapters a batch is spread over", DefaultValueFactory = _ => [1, 4], AllowMultipleArgumentsPerToken = true };
        var steps = new Option<int>("--steps") { Description = "timed decode steps per shape (median reported)", DefaultValueFactory = _ => 20 };
        var command = new Command("lora", "Decode step time with LoRA adapters against the base model alone") { model, dtype, device, batches, contexts, rank, adapters, steps };
        command.SetAction(result => Run(new Options(result.GetValue(model)!, result.GetValue(dtype)!, result.GetValue(device)!, result.GetValue(batches)!,
            result.GetValue(contexts)!, result.GetValue(rank), result.GetValue(adapters)!, result.GetValue(steps))));
        return command;
    }

    static int Run(Options o)
    {
        var rows = Measure(o);
        var table = new Table().AddColumns("batch", "context", "adapters", "ms/step", "vs base");
        foreach (var row in rows)
        {
            var baseMs = rows.First(r => r.Batch == row.Batch && r.Context == row.Context && r.Adapters == 0).Milliseconds;
            table.AddRow($"{row.Batch}", $"{row.Context}", $"{row.Adapters}", $"{row.Milliseconds:F3}",
                row.Adapters == 0 ? "" : $"{(row.Milliseconds / baseMs - 1) * 100:+0.0;-0.0}%");
        }
        AnsiConsole.MarkupLine($"[bold]LoRA decode[/]: {Markup.Escape(o.Model)} {o.Dtype} on {o.Device}, rank {o.Rank}, eager steps");
        AnsiConsole.Write(table);
        return 0;
    }

    /// Every shape's base step, then its steps spread over each number of adapters up to the batch size.
    internal static IReadOnlyList<Row> Measure(Options o)
    {
        var device = torch.device(o.Device);
        var cuda = device.type == DeviceType.CUDA;
        using var model = ModelLoader.Load(o.Model, o.Dtype, device);
        model.MaxPositions = Math.Max(model.MaxPositions, o.Contexts.Max());
        const int blockSize = 16;
        var numBlocks = o.Batches.Max() * ((o.Contexts.Max() + blockSize - 1) / blockSize);
        using var cache = model.CreateKVCache(numBlocks, blockSize);
        for (var k = 0; k < o.Adapters.Max(); k++)
            model.AddLoraAdapter(LoraLoader.Random($"bench-{k}", model.Config, o.Rank, model.Dtype, device, seed: k));
        var rows = new List<Row>();
        var random = new Random(0);
        foreach (var batch in o.Batches)
            foreach (var context in o.Contexts)
            {
                var sequences = StepBatch.Sequences(Enumerable.Repeat(1, batch).ToArray(), Enumerable.Repeat(context, batch).ToArray(),
                    blockSize, numBlocks, model.Config.VocabSize, random);
                foreach (var adapters in o.Adapters.Where(a => a <= batch).Prepend(0))
                    rows.Add(new Row(batch, context, adapters, Timing.MedianMilliseconds(() =>
                    {
                        using var scope = NewDisposeScope();
                        var inputs = StepInputs.Build([.. sequences.Select((s, i) => s with { Adapter = adapters == 0 ? -1 : i % adapters })], blockSize);
                        _ = model.Forward(inputs, cache).argmax(1).cpu();
                    }, 2, o.Steps, cuda)));
            }
        return rows;
    }
}
