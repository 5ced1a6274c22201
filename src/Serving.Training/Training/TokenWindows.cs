using static TorchSharp.torch;

namespace Serving.Training.Training;

/// A token stream on the device and the windows training and evaluation read from it. Training windows start at
/// random offsets drawn from (seed, step) alone, so a resumed run reads exactly the batches it would have read
/// without stopping; evaluation windows tile the stream from its start without overlap.
internal sealed class TokenWindows : IDisposable
{
    readonly Tensor _tokens;   // (numTokens) int32

    public TokenWindows(int[] tokens, Device device)
    {
        NumTokens = tokens.Length;
        _tokens = tensor(tokens, device: device).DetachFromDisposeScope();
    }

    public long NumTokens { get; }

    /// (batch, length + 1) int32: the training batch of one step.
    public Tensor Random(long seed, int step, int batch, int length)
    {
        var span = NumTokens - (length + 1);
        if (span < 0) throw new ArgumentException($"{NumTokens} tokens cannot hold a window of {length + 1}");
        var random = new Random(unchecked((int)(seed * 1_000_003 + step)));
        var starts = Enumerable.Range(0, batch).Select(_ => random.NextInt64(span + 1)).ToArray();
        return Gather(starts, length + 1);
    }

    /// Consecutive non-overlapping windows of length + 1 tokens from the start, at most maxWindows, in batches.
    public IEnumerable<Tensor> Sequential(int batch, int length, int maxWindows)
    {
        var count = (int)Math.Min(maxWindows, NumTokens / (length + 1));
        for (var first = 0; first < count; first += batch)
        {
            var starts = Enumerable.Range(first, Math.Min(batch, count - first)).Select(w => (long)w * (length + 1)).ToArray();
            yield return Gather(starts, length + 1);
        }
    }

    // starts (batch) -> (batch, width): rows of consecutive tokens
    Tensor Gather(long[] starts, int width)
    {
        using var scope = NewDisposeScope();
        var offsets = tensor(starts, device: _tokens.device).unsqueeze(1)
            .add(Serving.Engine.HeldScalars.Range(0, width, device: _tokens.device), Serving.Engine.HeldScalars.One);
        return _tokens.index_select(0, offsets.view(-1)).view(starts.Length, width).MoveToOuterDisposeScope();
    }

    public void Dispose() => _tokens.Dispose();
}
