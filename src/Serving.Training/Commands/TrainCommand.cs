using System.CommandLine;
using Serving.Engine.Config;
using Serving.Engine.Tokenization;
using Serving.Training.Corpus;
using Serving.Training.Training;

namespace Serving.Training.Commands;

/// `train` (pretraining from scratch) and `uptrain` (continuing a converted checkpoint for a fraction of the
/// pretraining steps, the GQA paper's uptraining). Both resume when the run folder holds a checkpoint.
internal static class TrainCommand
{
    public static Command Train()
    {
        var command = new Command("train", "Pretrain a Llama-style decoder (the engine's own) from scratch on a prepared corpus.");
        var binder = new TrainingOptionsBinder();
        binder.AddTo(command);
        var shape = new Option<string>("--shape") { Description = "Model shape: " + string.Join("; ", TrainingShapes.All.Select(s => $"{s.Name}: {s.Description}")), DefaultValueFactory = _ => "base" };
        var kvHeads = new Option<int?>("--num-kv-heads") { Description = "KV heads (default: as many as query heads, MHA)." };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", Required = true };
        command.Options.Add(shape);
        command.Options.Add(kvHeads);
        command.Options.Add(steps);
        command.SetAction(parse =>
        {
            var corpus = new TokenizedCorpus(binder.Data(parse));
            var options = binder.Options(parse, parse.GetValue(steps));
            var config = ShapeConfig(parse.GetValue(shape)!, corpus.TokenizerDir, options.SequenceLength, parse.GetValue(kvHeads));
            return Execute(binder.Run(parse, options) with { Config = config, TokenizerDir = corpus.TokenizerDir }, corpus);
        });
        return command;
    }

    public static Command Uptrain()
    {
        var command = new Command("uptrain", "Continue training a converted checkpoint for a fraction alpha of the pretraining steps (GQA uptraining).");
        var binder = new TrainingOptionsBinder();
        binder.AddTo(command);
        var model = new Option<string>("--model") { Description = "Checkpoint to start from (e.g. a `convert` output).", Required = true };
        var fraction = new Option<double>("--fraction") { Description = "alpha: uptraining steps as a fraction of the pretraining steps (0.05 in the paper).", DefaultValueFactory = _ => 0.05 };
        var pretrainingSteps = new Option<int>("--pretraining-steps") { Description = "Steps of the pretraining run alpha refers to.", Required = true };
        foreach (var option in new Option[] { model, fraction, pretrainingSteps }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var corpus = new TokenizedCorpus(binder.Data(parse));
            var steps = UptrainingSteps(parse.GetValue(fraction), parse.GetValue(pretrainingSteps));
            var run = binder.Run(parse, binder.Options(parse, steps)) with { InitFrom = parse.GetValue(model), TokenizerDir = parse.GetValue(model) };
            return Execute(run, corpus);
        });
        return command;
    }

    /// alpha x the pretraining steps, rounded; at least one step for any alpha above 0.
    public static int UptrainingSteps(double fraction, int pretrainingSteps)
    {
        if (fraction <= 0 || fraction > 1) throw new ArgumentException($"--fraction must lie in (0, 1], got {fraction} (alpha = 0 is the converted checkpoint itself)");
        return Math.Max(1, (int)Math.Round(fraction * pretrainingSteps));
    }

    /// A shape's config with the vocabulary and special ids of a tokenizer: generation ends at end-of-text, and at
    /// ChatML's end of turn when the tokenizer has one (a chat reply ends there).
    public static ModelConfig ShapeConfig(string shape, string tokenizerDir, int maxLength, int? numKVHeads)
    {
        var tokenizer = TextTokenizer.Load(tokenizerDir);
        var eos = tokenizer.EosTokenIds.Count > 0 ? tokenizer.EosTokenIds[0] : throw new ArgumentException($"{tokenizerDir}: the tokenizer has no eos_token");
        var config = TrainingShapes.Get(shape, tokenizer.VocabSize, maxLength, numKVHeads, tokenizer.BosTokenId, eos);
        return tokenizer.TokenToId("<|im_end|>") is { } endOfTurn ? config with { EosTokenIds = [eos, endOfTurn] } : config;
    }

    public static int Execute(TrainingRun run, TokenizedCorpus corpus)
    {
        using var train = new TokenWindows(corpus.ReadTrain(), run.Device);
        using var heldOut = new TokenWindows(corpus.ReadHeldOut(), run.Device);
        var state = new Trainer(run, train, heldOut, Console.Out).Run();
        if (state.Finished && state.Evals.LastOrDefault() is { } last)
            Console.WriteLine($"done: {run.CheckpointDir} (held-out perplexity {last.Perplexity:F2})");
        return 0;
    }
}
