using System.Diagnostics;
using System.Globalization;
using Serving.Engine.Config;
using Serving.Engine.Conversion;
using Serving.Engine.Model;
using Serving.Training.Corpus;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Experiment;

/// Runs an ExperimentPlan into a folder, variant after variant, recording each in results.json as it completes.
/// Resumable at two levels: finished variants are skipped, and a training run cut by the time limit continues from
/// its checkpoint when the same command runs again.
internal sealed class ExperimentRunner(ExperimentPlan plan, string outputDir, TokenizedCorpus corpus, ScalarType dtype, Device device,
    double? maxSeconds, bool charts, TextWriter log)
{
    readonly Stopwatch _clock = Stopwatch.StartNew();

    /// True when every variant is measured; false when the time limit stopped it (run again to continue).
    public bool Run()
    {
        Directory.CreateDirectory(outputDir);
        using var train = new TokenWindows(corpus.ReadTrain(), device);
        using var heldOut = new TokenWindows(corpus.ReadHeldOut(), device);
        var config = Commands.TrainCommand.ShapeConfig(plan.Shape, corpus.TokenizerDir, plan.Pretraining.SequenceLength, numKVHeads: null);
        var results = ExperimentResults.TryLoad(outputDir) ?? new ExperimentResults
        {
            Shape = plan.Shape, NumParameters = NumParameters(config), PretrainingSteps = plan.Pretraining.Steps,
            BatchSize = plan.Pretraining.BatchSize, SequenceLength = plan.Pretraining.SequenceLength, SweepGroups = plan.SweepGroups,
            Device = device.ToString(), ComputeDtype = ModelDtype.Name(dtype),
        };
        log.WriteLine($"experiment: {plan.Variants().Count} variants, {plan.TotalSteps()} optimizer steps of {plan.Pretraining.BatchSize} x {plan.Pretraining.SequenceLength} tokens");
        foreach (var variant in plan.Variants().Where(v => results.Find(v.Name) is null))
        {
            log.WriteLine($"== {variant.Name} ({_clock.Elapsed.TotalSeconds:F0}s)");
            var result = Make(variant, config, results, train, heldOut);
            if (result is null)
            {
                log.WriteLine("time limit reached: run the same command again to continue");
                return false;
            }
            results = results.With(result);
            results.Save(outputDir);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {variant.Name}: held-out perplexity {result.Perplexity:F3} after {result.Steps} steps"));
        }
        (results with { Complete = true }).Save(outputDir);
        return true;
    }

    public string RunDir(string name) => Path.Combine(outputDir, "runs", name);
    public string ConvertedDir(int groups, string method) => Path.Combine(outputDir, "converted", ExperimentPlan.Name(groups, method, 0));

    VariantResult? Make(Variant variant, ModelConfig config, ExperimentResults results, TokenWindows train, TokenWindows heldOut)
    {
        var teacher = results.Find(plan.Teacher.Name);
        return variant switch
        {
            { Method: "mha" } => Train(variant, plan.Pretraining, config, initFrom: null, train, heldOut, previous: null),
            { Method: "scratch" } => Train(variant, plan.Scratch(), config with { NumKeyValueHeads = variant.NumKVHeads }, null, train, heldOut, null),
            { Alpha: 0 } => Convert(variant, teacher!, heldOut),
            _ => Train(variant, plan.Uptraining(variant.Alpha!.Value), null, ConvertedDir(variant.NumKVHeads, variant.Method), train, heldOut, teacher),
        };
    }

    VariantResult? Train(Variant variant, TrainingOptions options, ModelConfig? config, string? initFrom, TokenWindows train, TokenWindows heldOut,
        VariantResult? previous)
    {
        var run = new TrainingRun
        {
            OutputDir = RunDir(variant.Name), Options = options, Config = config,
            InitFrom = initFrom, TokenizerDir = corpus.TokenizerDir, Dtype = dtype, Device = device,
            MaxSeconds = maxSeconds - _clock.Elapsed.TotalSeconds, Charts = charts,
        };
        if (run.MaxSeconds <= 0) return null;
        var state = new Trainer(run, train, heldOut, log).Run();
        if (!state.Finished) return null;
        var eval = state.Evals[^1];
        return new VariantResult(variant.Name, variant.NumKVHeads, variant.Method, variant.Alpha, state.Step + (previous?.Steps ?? 0),
            state.TrainingSeconds + (previous?.TrainingSeconds ?? 0), eval.Loss, eval.Perplexity, eval.Tokens, run.CheckpointDir);
    }

    // alpha 0: the teacher converted, evaluated as it is
    VariantResult Convert(Variant variant, VariantResult teacher, TokenWindows heldOut)
    {
        var target = ConvertedDir(variant.NumKVHeads, variant.Method);
        GqaConversion.ConvertCheckpoint(teacher.Checkpoint, target, variant.NumKVHeads, init: ExperimentPlan.Init(variant.Method), seed: variant.NumKVHeads);
        var options = plan.Pretraining;
        using var model = TrainingModel.Load(target, dtype, device, options.SequenceLength);
        var eval = HeldOutEvaluation.Run(model, heldOut, 0, options.BatchSize, options.SequenceLength, options.EvalWindows);
        return new VariantResult(variant.Name, variant.NumKVHeads, variant.Method, 0, teacher.Steps, teacher.TrainingSeconds,
            eval.Loss, eval.Perplexity, eval.Tokens, target);
    }

    static long NumParameters(ModelConfig config)
    {
        using var model = new CausalLM(config, ScalarType.Float32, CPU);   // uninitialised: nothing is filled
        return model.parameters().Sum(p => p.NumberOfElements);
    }
}
