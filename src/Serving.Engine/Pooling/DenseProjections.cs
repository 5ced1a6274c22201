using static TorchSharp.torch;

namespace Serving.Engine.Pooling;

/// The checkpoint's Dense modules (PoolerConfig.Dense) loaded on the model's device, run in float32 (as
/// sentence-transformers runs them) on the embeddings a step finishes, all at once.
internal sealed class DenseProjections : IDisposable
{
    readonly List<(DenseModule Module, Tensor Weight, Tensor? Bias)> _modules;
    readonly Device _device;

    public DenseProjections(IReadOnlyList<DenseModule> modules, Device device)
    {
        _device = device;
        _modules = [];
        try
        {
            foreach (var module in modules)
            {
                var (weight, bias) = module.Load(device);
                _modules.Add((module, weight, bias));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// Pooled vectors (each in_features of the first module) through every module: out_features of the last each.
    public double[][] Apply(IReadOnlyList<double[]> vectors)
    {
        using var scope = NewDisposeScope();
        var x = tensor(vectors.SelectMany(v => v).ToArray(), [vectors.Count, vectors[0].Length], ScalarType.Float64)
            .to(ScalarType.Float32, _device);
        foreach (var (module, weight, bias) in _modules)
        {
            x = nn.functional.linear(x, weight, bias);
            if (module.Tanh) x = x.tanh();
        }
        var rows = x.to(ScalarType.Float64, CPU).data<double>().ToArray();
        var width = (int)x.size(1);
        return Enumerable.Range(0, vectors.Count).Select(i => rows.AsSpan(i * width, width).ToArray()).ToArray();
    }

    public void Dispose()
    {
        foreach (var (_, weight, bias) in _modules)
        {
            weight.Dispose();
            bias?.Dispose();
        }
        _modules.Clear();
    }
}
