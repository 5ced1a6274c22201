namespace Serving.Training.Training;

/// Held-out perplexity: exp of the mean next-token negative log-likelihood over consecutive windows of the held-out
/// stream (each window's first token is context only), through the training forward (the serving decoder).
internal static class HeldOutEvaluation
{
    public static EvalPoint Run(TrainingModel model, TokenWindows heldOut, int step, int batch, int length, int maxWindows)
    {
        double sum = 0;
        long tokens = 0;
        foreach (var windows in heldOut.Sequential(batch, length, maxWindows))
        {
            using (windows)
            {
                sum += model.SumNll(windows);
                tokens += windows.shape[0] * length;
            }
        }
        if (tokens == 0) throw new ArgumentException($"the held-out stream ({heldOut.NumTokens} tokens) holds no window of {length + 1}");
        return new EvalPoint(step, sum / tokens, Math.Exp(sum / tokens), tokens);
    }
}
