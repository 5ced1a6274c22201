using System.Diagnostics;
using System.Globalization;
using Serving.Engine;
using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Training.Reports;
using static TorchSharp.torch;

namespace Serving.Training.Training;

/// One training run into a folder: from scratch (a config) or from a checkpoint (uptraining a converted model),
/// resumable. OutputDir gets checkpoint/ (see TrainingCheckpoint), metrics.jsonl, eval.jsonl and loss.png.
internal sealed record TrainingRun
{
    public required string OutputDir { get; init; }
    public required TrainingOptions Options { get; init; }
    /// The model to create when starting from scratch (ignored when InitFrom is set or the run resumes).
    public ModelConfig? Config { get; init; }
    /// A checkpoint folder to start from instead of a new model.
    public string? InitFrom { get; init; }
    /// Tokenizer files copied into every checkpoint.
    public string? TokenizerDir { get; init; }
    public ScalarType Dtype { get; init; } = ScalarType.Float32;
    public Device Device { get; init; } = CPU;
    /// Stop (after saving) once this many seconds of this piece have passed; rerun to continue.
    public double? MaxSeconds { get; init; }
    /// Draw loss.png at each checkpoint.
    public bool Charts { get; init; } = true;

    public string CheckpointDir => Path.Combine(OutputDir, "checkpoint");
}

/// The loop: sample a batch, forward and backward through the serving decoder, clip the global gradient norm,
/// AdamW on the float32 master weights, refresh the compute copy. Loss and gradient norm stay on the device
/// between progress lines, so steps do not wait for the host.
internal sealed class Trainer(TrainingRun run, TokenWindows train, TokenWindows heldOut, TextWriter log)
{
    public TrainerState Run()
    {
        Directory.CreateDirectory(run.OutputDir);
        var metrics = new MetricsLog(run.OutputDir);
        var resumed = TrainerState.TryLoad(run.CheckpointDir);
        if (resumed is { Finished: true })
        {
            log.WriteLine($"{run.OutputDir} has finished its {resumed.Step} steps");
            return resumed;
        }
        var options = (resumed?.Options ?? run.Options).Validated();
        using var model = resumed is not null ? TrainingModel.Load(run.CheckpointDir, run.Dtype, run.Device, options.SequenceLength)
            : run.InitFrom is { } from ? TrainingModel.Load(from, run.Dtype, run.Device, options.SequenceLength)
            : TrainingModel.Create(run.Config ?? throw new ArgumentException("a run from scratch needs a model config"), run.Dtype, run.Device, options.SequenceLength, options.Seed);
        using var optimizer = new AdamW(model.DecayMask(), options.Beta1, options.Beta2, weightDecay: options.WeightDecay);
        var state = resumed ?? new TrainerState
        {
            Options = options, StartedFrom = run.InitFrom ?? "scratch", ComputeDtype = ModelDtype.Name(run.Dtype),
        };
        if (resumed is not null)
        {
            TrainingCheckpoint.LoadOptimizer(run.CheckpointDir, optimizer, resumed.Step);
            metrics.TruncateAfter(resumed.Step);
            log.WriteLine($"resuming {run.OutputDir} at step {resumed.Step}/{options.Steps}");
        }
        else
        {
            metrics.TruncateAfter(-1);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"training {model.NumParameters / 1e6:F2}M parameters ({model.Config.NumAttentionHeads} heads, {model.Config.NumKeyValueHeads} KV heads) " +
                $"for {options.Steps} steps of {options.BatchSize} x {options.SequenceLength} tokens in {ModelDtype.Name(model.ComputeDtype)} on {run.Device}"));
        }
        return Loop(model, optimizer, options, state, metrics);
    }

    TrainerState Loop(TrainingModel model, AdamW optimizer, TrainingOptions options, TrainerState state, MetricsLog metrics)
    {
        var clock = Stopwatch.StartNew();
        using var progress = new Progress(run.Device);
        while (state.Step < options.Steps)
        {
            var lr = options.Schedule.At(state.Step);
            using (var scope = NewDisposeScope())
            {
                var norm = Step(model, optimizer, options, state.Step, lr, progress.LossSum);
                state = state with { Step = state.Step + 1, TokensSeen = state.TokensSeen + (long)options.BatchSize * options.SequenceLength };
                progress.Steps++;
                if (state.Step % options.LogEvery == 0 || state.Step == options.Steps)
                    Report(progress, norm, lr, options, state.Step, state.TrainingSeconds + clock.Elapsed.TotalSeconds, metrics);
            }
            if (state.Step == options.Steps) break;
            if (options.EvalEvery > 0 && state.Step % options.EvalEvery == 0) state = Evaluate(model, options, state, metrics);
            var outOfTime = run.MaxSeconds is { } max && clock.Elapsed.TotalSeconds >= max;
            if (outOfTime || (options.SaveEvery > 0 && state.Step % options.SaveEvery == 0))
            {
                state = Save(model, optimizer, state with { TrainingSeconds = state.TrainingSeconds + clock.Elapsed.TotalSeconds }, metrics);
                clock.Restart();
            }
            if (outOfTime)
            {
                log.WriteLine($"stopped at step {state.Step}/{options.Steps} (time limit); run the same command again to continue");
                return state;
            }
        }
        state = state with { TrainingSeconds = state.TrainingSeconds + clock.Elapsed.TotalSeconds };
        return Save(model, optimizer, Evaluate(model, options, state, metrics), metrics);
    }

    /// The loss summed on the device since the last progress line, and the steps and time it covers.
    sealed class Progress(Device device) : IDisposable
    {
        public Tensor LossSum { get; } = zeros(1, ScalarType.Float32, device).DetachFromDisposeScope();
        public int Steps { get; set; }
        public Stopwatch Clock { get; private set; } = Stopwatch.StartNew();

        public void Reset()
        {
            LossSum.zero_();
            Steps = 0;
            Clock = Stopwatch.StartNew();
        }

        public void Dispose() => LossSum.Dispose();
    }

    // a progress line and a metrics point: reading the loss and norm waits for the device, once per LogEvery steps
    void Report(Progress progress, Tensor norm, double lr, TrainingOptions options, int step, double seconds, MetricsLog metrics)
    {
        var tokens = (double)progress.Steps * options.BatchSize * options.SequenceLength;
        var point = new MetricsPoint(step, progress.LossSum.item<float>() / progress.Steps, lr, norm.item<float>(),
            tokens / progress.Clock.Elapsed.TotalSeconds, seconds);
        metrics.Append(point);
        log.WriteLine(MetricsLog.Format(point));
        progress.Reset();
    }

    // one optimizer step; returns the gradient norm before clipping (on the device)
    Tensor Step(TrainingModel model, AdamW optimizer, TrainingOptions options, int step, double lr, Tensor lossSum)
    {
        var windows = train.Random(options.Seed, step, options.BatchSize, options.SequenceLength);
        var loss = model.Loss(windows);
        loss.backward();
        using var noGrad = no_grad();
        lossSum.add_(loss.detach(), HeldScalars.One);
        var gradients = model.Gradients32();
        var norm = gradients.norm();
        // min(clip / (norm + 1e-6), 1)
        var clip = HeldScalars.Multiply(HeldScalars.Add(norm, 1e-6).reciprocal(), options.GradientClip);
        gradients.mul_(clip.clamp_max(HeldScalars.One));
        optimizer.Step(model.MasterWeights, gradients, lr);
        model.CopyMasterToCompute();
        model.ZeroGrad();
        return norm;
    }

    TrainerState Evaluate(TrainingModel model, TrainingOptions options, TrainerState state, MetricsLog metrics)
    {
        var point = HeldOutEvaluation.Run(model, heldOut, state.Step, options.BatchSize, options.SequenceLength, options.EvalWindows);
        metrics.Append(point);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"step {state.Step,6}  held-out loss {point.Loss:F4}  perplexity {point.Perplexity:F2} ({point.Tokens} tokens)"));
        return state with { Evals = [.. state.Evals, point] };
    }

    TrainerState Save(TrainingModel model, AdamW optimizer, TrainerState state, MetricsLog metrics)
    {
        TrainingCheckpoint.Save(run.CheckpointDir, model, optimizer, state, run.TokenizerDir);
        if (run.Charts) TrainingCharts.LossCurve(metrics.Metrics(), metrics.Evals(), Path.Combine(run.OutputDir, "loss.png"), Path.GetFileName(run.OutputDir.TrimEnd('/')));
        return state;
    }
}
