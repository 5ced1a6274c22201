using System.Diagnostics;
using Serving.Engine.Config;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Experiment;

/// Sizes the experiment to a time budget on the machine at hand: times optimizer steps of a throwaway GQA model of
/// the plan's shape (grouped attention is the slower path) and picks the largest pretraining length whose whole plan
/// fits. The length is recorded in results.json, so a resumed experiment keeps it.
internal static class StepCalibration
{
    const int WarmupSteps = 5;
    const int TimedSteps = 15;
    /// Pretraining lengths are multiples of this, so that every alpha of the plan is a whole number of steps.
    const int StepQuantum = 40;

    /// Seconds per optimizer step of the plan's recipe (forward, backward, AdamW), measured after a warm-up.
    public static double SecondsPerStep(ModelConfig config, TrainingOptions options, TokenWindows train, ScalarType dtype, Device device)
    {
        using var model = TrainingModel.Create(config, dtype, device, options.SequenceLength, seed: 0);
        using var optimizer = new AdamW(model.DecayMask());
        var clock = new Stopwatch();
        for (var step = 0; step < WarmupSteps + TimedSteps; step++)
        {
            if (step == WarmupSteps) clock.Start();
            using var scope = NewDisposeScope();
            var loss = model.Loss(train.Random(options.Seed + 99, step, options.BatchSize, options.SequenceLength));
            loss.backward();
            using (no_grad()) optimizer.Step(model.MasterWeights, model.Gradients32(), 1e-4);
            model.CopyMasterToCompute();
            model.ZeroGrad();
            if (step == WarmupSteps + TimedSteps - 1) _ = loss.item<float>();   // wait for the device
        }
        return clock.Elapsed.TotalSeconds / TimedSteps;
    }

    /// The largest multiple of StepQuantum pretraining steps whose plan (all its optimizer steps) trains within
    /// trainingSeconds at secondsPerStep; at least one quantum.
    public static int PretrainingSteps(Func<int, ExperimentPlan> planFor, double trainingSeconds, double secondsPerStep)
    {
        var stepsPerPretrainingStep = (double)planFor(StepQuantum * 100).TotalSteps() / (StepQuantum * 100);
        var steps = (int)(trainingSeconds / secondsPerStep / stepsPerPretrainingStep) / StepQuantum * StepQuantum;
        return Math.Max(StepQuantum, steps);
    }
}
