namespace Serving.Training.Training;

/// Linear warm-up from 0 to the peak over WarmupSteps, then a cosine decay to MinRatio x peak at TotalSteps (and
/// flat after): the schedule of GPT-3 / Llama pretraining.
internal sealed record LearningRateSchedule(double Peak, int WarmupSteps, int TotalSteps, double MinRatio = 0.1)
{
    /// The rate of the step numbered step (0-based).
    public double At(int step)
    {
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        var decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Min(1.0, (double)(step - WarmupSteps) / decaySteps);
        var cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return Peak * (MinRatio + (1 - MinRatio) * cosine);
    }
}
