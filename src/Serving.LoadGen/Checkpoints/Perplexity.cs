using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.LoadGen.Checkpoints;

/// Perplexity of a text under a model: exp of the mean negative log-likelihood of each token given the ones
/// before it. The tokens are cut into consecutive windows of at most windowLength (the model's context), each
/// run as one prefill through the engine's paged forward; the first token of a window is not predicted.
internal sealed record PerplexityResult(double Perplexity, double MeanNll, long NumPredicted, int NumWindows);

internal static class Perplexity
{
    const int BlockSize = 16;

    public static PerplexityResult Evaluate(LoadedModel model, IReadOnlyList<int> tokens, int windowLength)
    {
        if (windowLength < 2) throw new ArgumentException($"the window must hold at least 2 tokens, got {windowLength}");
        var numBlocks = (Math.Min(windowLength, tokens.Count) + BlockSize - 1) / BlockSize;
        using var cache = model.CreateKVCache(Math.Max(1, numBlocks), BlockSize);
        double totalNll = 0;
        long predicted = 0;
        var windows = 0;
        for (var start = 0; start + 1 < tokens.Count; start += windowLength)
        {
            var window = tokens.Skip(start).Take(windowLength).ToArray();
            if (window.Length < 2) break;
            totalNll += WindowNll(model, cache, window);
            predicted += window.Length - 1;
            windows++;
        }
        if (predicted == 0) throw new ArgumentException("the text has fewer than 2 tokens: nothing to predict");
        return new PerplexityResult(Math.Exp(totalNll / predicted), totalNll / predicted, predicted, windows);
    }

    /// Sum over positions 1..n-1 of -log p(token | tokens before it), one prefill of the window from position 0.
    static double WindowNll(LoadedModel model, Engine.KVCache.PagedKVCache cache, int[] window)
    {
        var n = window.Length;
        var blocks = Enumerable.Range(0, Engine.KVCache.SlotMapping.BlocksFor(n, BlockSize)).ToArray();
        var inputs = StepInputs.Build([new StepSequence(window, 0, n, blocks)], BlockSize);
        using var scope = NewDisposeScope();
        var logits = model.ForwardAllLogits(inputs, cache);                                              // (n, vocab) float32
        var logProbs = nn.functional.log_softmax(logits.narrow(0, 0, n - 1).to_type(ScalarType.Float64), 1);  // (n - 1, vocab)
        var targets = tensor(window.Skip(1).Select(t => (long)t).ToArray(), device: logits.device).unsqueeze(1);  // (n - 1, 1)
        return -logProbs.gather(1, targets).sum().item<double>();
    }
}
