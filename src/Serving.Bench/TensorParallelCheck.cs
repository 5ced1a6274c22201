using System.CommandLine;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// serving-bench tp-check: a preset split over N GPUs against the whole model on one GPU. Every rank draws the whole
/// model's random weights and keeps its shard, so both hold the same model; the check runs a batch of random prompts (one prefill
/// step) and then decode steps teacher-forced along the whole model's greedy tokens, and compares the logits of every
/// step: max |difference|, relative error (Frobenius) and how often the argmax agrees. Only the sum order differs
/// (partial sums added by the all-reduce), so float32 agrees to ~1e-5 and bfloat16 to its rounding. Exit code 1 past
/// the dtype's tolerance. The reference checkpoints at N ranks: the main command's --fixtures with --tensor-parallel-size.
internal static class TensorParallelCheck
{
    sealed record Options(string Model, string Dtype, string Device, int Size, int Prompts, int PromptLength, int DecodeSteps);

    public static Command Command()
    {
        var model = new Option<string>("--model") { Description = "preset (llama3-8b, tiny-gqa, ...)", DefaultValueFactory = _ => "llama3-8b" };
        var dtype = new Option<string>("--dtype") { Description = "bfloat16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var device = new Option<string>("--device") { Description = "cuda[:N] (the whole model on N, the ranks on N, N+1, ...) or cpu", DefaultValueFactory = _ => "cuda" };
        var size = new Option<int>("--tensor-parallel-size", "-tp") { Description = "ranks of the split model", DefaultValueFactory = _ => 2 };
        var prompts = new Option<int>("--prompts") { DefaultValueFactory = _ => 4 };
        var promptLength = new Option<int>("--prompt-len") { DefaultValueFactory = _ => 128 };
        var decode = new Option<int>("--decode-steps") { DefaultValueFactory = _ => 32 };
        var command = new Command("tp-check", "A preset split over N ranks against the whole model: logits of prefill and teacher-forced decode steps")
        {
            model, dtype, device, size, prompts, promptLength, decode,
        };
        command.SetAction(result => Run(new Options(result.GetValue(model)!, result.GetValue(dtype)!, result.GetValue(device)!,
            result.GetValue(size), result.GetValue(prompts), result.GetValue(promptLength), result.GetValue(decode))));
        return command;
    }

    static int Run(Options options)
    {
        var device = torch.device(options.Device);
        using var whole = ModelLoader.LoadPreset(options.Model, options.Dtype, device);
        using var sharded = ModelLoader.LoadPreset(options.Model, options.Dtype, device, tensorParallelSize: options.Size);
        const int blockSize = 16;
        var contextLength = options.PromptLength + options.DecodeSteps;
        var numBlocks = options.Prompts * SlotMapping.BlocksFor(contextLength, blockSize) + 1;
        using var wholeCache = whole.CreateKVCache(numBlocks, blockSize);
        using var shardedCache = sharded.CreateKVCache(numBlocks, blockSize);
        var random = new Random(7);
        var sequences = StepBatch.Sequences(Enumerable.Repeat(options.PromptLength, options.Prompts).ToArray(),
            Enumerable.Repeat(contextLength, options.Prompts).ToArray(), blockSize, numBlocks, whole.Config.VocabSize, random);
        var tokens = sequences.Select(s => s.TokenIds.ToArray()).ToArray();
        var rows = new List<(string Step, double MaxAbs, double Relative, int Agree, int Total)>();
        var step = StepInputs.Build(sequences.Select((s, i) => s with { TokenIds = tokens[i], StartPosition = 0, NumNewTokens = options.PromptLength }).ToList(), blockSize);
        for (var i = 0; i <= options.DecodeSteps; i++)
        {
            var (next, row) = Compare(i == 0 ? "prefill" : $"decode {i}", whole, wholeCache, sharded, shardedCache, step);
            rows.Add(row);
            if (i == options.DecodeSteps) break;
            var position = options.PromptLength + i;
            for (var s = 0; s < tokens.Length; s++) tokens[s][position] = next[s];   // the whole model's greedy token
            step = StepInputs.Build(sequences.Select((seq, s) => seq with { TokenIds = tokens[s], StartPosition = position, NumNewTokens = 1 }).ToList(), blockSize);
        }

        var tolerance = options.Dtype == "float32" ? 1e-4 : 5e-2;
        var table = new Table().Title($"{options.Model} over {options.Size} ranks vs whole, {options.Dtype} (relative tolerance {tolerance:E0})")
            .AddColumns("step", "max |difference|", "relative error", "argmax agrees");
        foreach (var row in rows.Take(3).Concat(rows.Skip(3).TakeLast(1)))
            table.AddRow(row.Step, $"{row.MaxAbs:E2}", $"{row.Relative:E2}", $"{row.Agree}/{row.Total}");
        var (agree, total) = (rows.Sum(r => r.Agree), rows.Sum(r => r.Total));
        table.AddRow("all steps", $"{rows.Max(r => r.MaxAbs):E2}", $"{rows.Max(r => r.Relative):E2}", $"{agree}/{total}");
        AnsiConsole.Write(table);
        return rows.Max(r => r.Relative) <= tolerance ? 0 : 1;
    }

    static (int[] WholeArgmax, (string, double, double, int, int) Row) Compare(string name, LoadedModel whole, PagedKVCache wholeCache,
        LoadedModel sharded, PagedKVCache shardedCache, StepInputs step)
    {
        using var scope = NewDisposeScope();
        var a = whole.Forward(step, wholeCache);                     // (numSeqs, vocab) float32
        var b = sharded.Forward(step, shardedCache).to(a.device);
        var difference = (a - b).abs();
        var (argmaxA, argmaxB) = (a.argmax(-1), b.argmax(-1));
        var agree = (int)argmaxA.eq(argmaxB).sum().item<long>();
        var relative = (a - b).norm().item<float>() / a.norm().item<float>();
        var next = argmaxA.to_type(ScalarType.Int32).cpu().data<int>().ToArray();
        return (next, (name, difference.max().item<float>(), relative, agree, next.Length));
    }
}
