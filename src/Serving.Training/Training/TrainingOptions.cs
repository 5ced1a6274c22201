namespace Serving.Training.Training;

/// The recipe of one training run; written into the checkpoint (trainer_state.json) so that a resumed run goes on
/// with the recipe it started with.
internal sealed record TrainingOptions
{
    /// Optimizer steps of the whole run.
    public required int Steps { get; init; }
    /// Sequences per step.
    public int BatchSize { get; init; } = 32;
    /// Tokens per sequence (the model predicts each from the ones before it).
    public int SequenceLength { get; init; } = 512;
    /// Peak learning rate, reached after WarmupSteps, then cosine decay to MinLearningRateRatio x peak.
    public double LearningRate { get; init; } = 1e-3;
    public int WarmupSteps { get; init; } = 100;
    public double MinLearningRateRatio { get; init; } = 0.1;
    /// Decoupled weight decay on matrices and embeddings (AdamW).
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    /// Gradients are scaled down to this global L2 norm when they exceed it.
    public double GradientClip { get; init; } = 1.0;
    /// Seeds the initialisation (from scratch) and the order of training windows.
    public long Seed { get; init; }
    /// Steps between progress lines (and the loss points of metrics.jsonl).
    public int LogEvery { get; init; } = 10;
    /// Steps between held-out evaluations; 0 evaluates at the end only.
    public int EvalEvery { get; init; }
    /// Held-out windows (of SequenceLength + 1 tokens) per evaluation.
    public int EvalWindows { get; init; } = 128;
    /// Steps between checkpoints; 0 saves at the end (and when the time limit stops the run).
    public int SaveEvery { get; init; }

    public LearningRateSchedule Schedule => new(LearningRate, WarmupSteps, Steps, MinLearningRateRatio);

    /// Throws ArgumentException naming the first value out of range.
    public TrainingOptions Validated()
    {
        Check(Steps >= 1, "--steps must be at least 1");
        Check(BatchSize >= 1, "--batch-size must be at least 1");
        Check(SequenceLength >= 2, "--seq-len must be at least 2");
        Check(LearningRate > 0, "--lr must be positive");
        Check(WarmupSteps >= 0, "--warmup-steps must not be negative");
        Check(GradientClip > 0, "--clip must be positive");
        Check(LogEvery >= 1, "--log-every must be at least 1");
        Check(EvalWindows >= 1, "--eval-windows must be at least 1");
        return this;
    }

    static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }
}
