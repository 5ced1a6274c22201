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
        var steps = new Option<int>("--steps") { Description = "Pretraining steps of the teacher (alpha refers to them).", Required = true };
        var uptrainLr = new Option<double>("--uptrain-lr") { Description = "Peak learning rate of uptraining.", DefaultValueFactory = _ => 3e-4 };
        var sweepGroups = new Option<int>("--sweep-groups") { Description = "KV heads of the alpha sweep and of the model from scratch.", DefaultValueFactory = _ => 2 };
        var plan = new Option<bool>("--plan") { Description = "Print the variants and step counts, then exit." };
        foreach (var option in new Option[] { shape, steps, uptrainLr, sweepGroups, plan }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var pretraining = binder.Options(parse, parse.GetValue(steps));
            var experiment = new ExperimentPlan
            {
                Shape = parse.GetValue(shape)!,
                Pretraining = pretraining with { EvalEvery = Math.Max(1, pretraining.Steps / 10) },
                UptrainingLearningRate = parse.GetValue(uptrainLr),
                SweepGroups = parse.GetValue(sweepGroups),
            };
            if (parse.GetValue(plan)) return PrintPlan(experiment);
            var run = binder.Run(parse, pretraining);
            var runner = new ExperimentRunner(experiment, run.OutputDir, new TokenizedCorpus(binder.Data(parse)), run.Dtype, run.Device,
                run.MaxSeconds, run.Charts, Console.Out);
            return runner.Run() ? 0 : 3;
        });
        return command;
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
