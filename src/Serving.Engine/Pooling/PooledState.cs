namespace Serving.Engine.Pooling;

/// One request's pooling as its prompt is computed, chunk after chunk: the sum of the rows each step hands over (final
/// hidden states of the rows PoolingParams.RowsToPool named) is folded into a running sum, and the vector is made once
/// the whole prompt was seen. A chunk at position 0 starts over (a preempted sequence computes
/// its prompt again).
internal sealed class PooledState(PoolingParams pooling, int promptLength)
{
    double[]? _sum;
    int _rows;

    public PoolingParams Params { get; } = pooling;

    /// sum: the sum of a chunk's pooled rows (rows of them, the first at prompt position start), as
    /// PoolingParams.RowsToPool named them.
    public void Add(int start, ReadOnlySpan<double> sum, int rows)
    {
        if (start == 0) (_sum, _rows) = (null, 0);
        _sum ??= new double[sum.Length];
        for (var i = 0; i < sum.Length; i++) _sum[i] += sum[i];
        _rows += rows;
    }

    /// The pooled vector: the mean of the rows seen (one row for LAST and CLS).
    public double[] Mean()
    {
        if (_sum is null || (Params.Type == PoolingType.Mean && _rows != promptLength))
            throw new InvalidOperationException($"pooling saw {_rows} of the prompt's {promptLength} tokens");
        return _sum.Select(s => s / _rows).ToArray();
    }

    /// The embedding of a pooled vector (Mean, through the checkpoint's Dense modules if it has them): its first
    /// Dimensions values, scaled to unit length when asked.
    public float[] Finish(double[] pooled)
    {
        var length = Math.Min(Params.Dimensions ?? pooled.Length, pooled.Length);
        var vector = pooled[..length];
        if (Params.Normalize)
        {
            // as torch.nn.functional.normalize: divided by max(norm, 1e-12)
            var norm = Math.Max(Math.Sqrt(vector.Sum(v => v * v)), 1e-12);
            for (var i = 0; i < length; i++) vector[i] /= norm;
        }
        return vector.Select(v => (float)v).ToArray();
    }
}
