using System.CommandLine;
using Serving.Training.Corpus;
using Serving.Training.Experiment;

namespace Serving.Training.Commands;

/// `experiment`: the whole GQA experiment (ExperimentPlan) into one folder, resumable.
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var command = new Command("experiment", "Run the GQA paper's experiment: MHA teacher, conversions (3 methods x GQA-4, GQA-2, MQA), uptraining, alpha sweep, GQA from scratch.");
        var binder = new TrainingOptionsBinder();
        binder.AddTo(command);
        var shape = new Option<string>("--shape") { Description = "Teacher shape (see `train --help`).", DefaultValueFactory = _ => "base" };
        var steps = new Option<int?>("--steps") { Description = "Pretraining steps of the teacher (alpha refers to them); default: sized to --time-budget." };
        var budget = new Option<double?>("--time-budget") { Description = "Seconds the whole plan may train: --steps is chosen by timing a few steps first (kept on resume)." };
        var maxSteps = new Option<int>("--max-steps") { Description = "Upper bound on the steps --time-budget picks (a small corpus is not worth many epochs).", DefaultValueFactory = _ => int.MaxValue };
        var uptrainLr = new Option<double>("--uptrain-lr") { Description = "Peak learning rate of uptraining.", DefaultValueFactory = _ => 3e-4 };
        var sweepGroups = new Option<int>("--sweep-groups") { Description = "KV heads of the alpha sweep and of the model from scratch.", DefaultValueFactory = _ => 2 };
        var plan = new Option<bool>("--plan") { Description = "Print the variants and step counts, then exit." };
        foreach (var option in new Option[] { shape, steps, budget, maxSteps, uptrainLr, sweepGroups, plan }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var corpus = new TokenizedCorpus(binder.Data(parse));
            var run = binder.Run(parse, binder.Options(parse, 1));
            ExperimentPlan PlanFor(int pretrainingSteps)
            {
                var pretraining = binder.Options(parse, pretrainingSteps);
                return new ExperimentPlan
                {
                    Shape = parse.GetValue(shape)!,
                    Pretraining = pretraining with { EvalEvery = Math.Max(1, pretraining.Steps / 10) },
                    UptrainingLearningRate = parse.GetValue(uptrainLr),
                    SweepGroups = parse.GetValue(sweepGroups),
                };
            }
            var pretrainingSteps = parse.GetValue(steps) ?? ExperimentResults.TryLoad(run.OutputDir)?.PretrainingSteps
                ?? Math.Min(parse.GetValue(maxSteps), Calibrate(PlanFor, corpus, run, parse.GetValue(budget) ?? throw new ArgumentException("give --steps or --time-budget")));
            var experiment = PlanFor(pretrainingSteps);
            if (parse.GetValue(plan)) return PrintPlan(experiment);
            var runner = new ExperimentRunner(experiment, run.OutputDir, corpus, run.Dtype, run.Device, run.MaxSeconds, run.Charts, Console.Out);
            return runner.Run() ? 0 : 3;
        });
        return command;
    }

    // times steps of the plan's slowest model, then fits the plan's steps into the budget
    static int Calibrate(Func<int, ExperimentPlan> planFor, TokenizedCorpus corpus, Training.TrainingRun run, double budgetSeconds)
    {
        var plan = planFor(1);
        var config = TrainCommand.ShapeConfig(plan.Shape, corpus.TokenizerDir, plan.Pretraining.SequenceLength, plan.SweepGroups);
        using var train = new Training.TokenWindows(corpus.ReadTrain(), run.Device);
        var seconds = StepCalibration.SecondsPerStep(config, plan.Pretraining, train, run.Dtype, run.Device);
        var steps = StepCalibration.PretrainingSteps(planFor, budgetSeconds, seconds);
        Console.WriteLine($"calibration: {seconds * 1000:F1} ms per step of {plan.Pretraining.BatchSize} x {plan.Pretraining.SequenceLength} tokens; " +
            $"{budgetSeconds:F0} s of training fit {steps} pretraining steps ({planFor(steps).TotalSteps()} in all)");
        return steps;
    }

    static int PrintPlan(ExperimentPlan plan)
    {
        foreach (var variant in plan.Variants())
        {
            var steps = variant switch
            {
                { Method: "mha" } => plan.Pretraining.Steps,
                { Method: "scratch" } => plan.Scratch().Steps,
                { Alpha: 0 } => 0,
                _ => plan.Uptraining(variant.Alpha!.Value).Steps,
            };
            Console.WriteLine($"{variant.Name,-24} KV heads {variant.NumKVHeads}  {variant.Method,-10}  steps {steps}");
        }
        Console.WriteLine($"total optimizer steps: {plan.TotalSteps()} ({(double)plan.TotalSteps() / plan.Pretraining.Steps:F3} x pretraining)");
        return 0;
    }
}
