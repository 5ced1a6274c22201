using Serving.Engine.Config;
using Serving.Engine.Cuda;
using static TorchSharp.torch;

namespace Serving.Bench;

/// One linear layer shape at one token count: TorchSharp's linear (cuBLAS's own algorithm) and the product as a tuned
/// decode step runs it (MatmulTuning: the fastest of that and cuBLASLt's candidates), milliseconds per launch and the
/// weight bytes read per second.
internal sealed record LinearResult(string Model, string Layer, int Tokens, int OutFeatures, int InFeatures, double Milliseconds, double BytesPerSecond,
    double TunedMilliseconds, double TunedBytesPerSecond);

/// How fast the decode step's matrix products read their weights, layer by layer (--linear): at decode batch sizes a
/// linear layer is a read of its weights, so this is the step's largest part against the copy bandwidth. Each timing
/// cycles through copies of the weight that together exceed the L2 cache (every launch reads HBM), captured as one
/// CUDA graph of back-to-back launches as a decode step's graph replays them (the host's launch cost stays out).
internal static class LinearBenchmark
{
    const double BytesPerTiming = 512e6;   // weight copies per shape: about this much, ten times H200's L2
    const int LaunchesPerTiming = 64;

    public static IEnumerable<LinearResult> Run(string model, ModelConfig config, ScalarType dtype, CudaDevice cudaDevice, Device device, IReadOnlyList<int> tokenCounts)
    {
        using var stream = CudaStream.Create(cudaDevice);
        stream.MakeCurrent();
        using var tuning = new MatmulTuning(stream.Handle, device);
        foreach (var (layer, n, k) in Layers(config))
        {
            using var scope = NewDisposeScope();
            var copies = (int)Math.Clamp(Math.Ceiling(BytesPerTiming / (2.0 * n * k)), 2, LaunchesPerTiming);
            var weights = Enumerable.Range(0, copies).Select(_ => randn(n, k, dtype: dtype, device: device)).ToArray();
            tuning.Tune(weights, tokenCounts);
            foreach (var m in tokenCounts)
            {
                using var inner = NewDisposeScope();
                var x = randn(m, k, dtype: dtype, device: device);
                var ms = PerLaunch(w => nn.functional.linear(x, w).Dispose(), weights);
                var tuned = PerLaunch(w => (tuning.TryLinear(x, w) ?? nn.functional.linear(x, w)).Dispose(), weights);
                yield return new LinearResult(model, layer, m, n, k, ms, 2.0 * n * k / (ms / 1e3), tuned, 2.0 * n * k / (tuned / 1e3));
            }
        }
    }

    // the decoder's linear layers (q, k, v fused; gate and up fused) and the LM head
    static IEnumerable<(string Layer, int N, int K)> Layers(ModelConfig c) =>
    [
        ("qkv_proj", c.QSize + 2 * c.KVSize, c.HiddenSize),
        ("o_proj", c.HiddenSize, c.QSize),
        ("gate_up_proj", 2 * c.IntermediateSize, c.HiddenSize),
        ("down_proj", c.HiddenSize, c.IntermediateSize),
        ("lm_head", c.VocabSize, c.HiddenSize),
    ];

    // Milliseconds per launch: rounds over every weight copy (at least LaunchesPerTiming launches) captured as one
    // graph; median of five replays.
    static double PerLaunch(Action<Tensor> launch, Tensor[] weights)
    {
        var rounds = (LaunchesPerTiming + weights.Length - 1) / weights.Length;
        foreach (var w in weights) launch(w);                  // warm-up outside the capture (cuBLAS handles, workspaces)
        using var graph = new CudaGraph();
        graph.BeginCapture();
        for (var r = 0; r < rounds; r++)
            foreach (var w in weights) launch(w);
        graph.EndCapture();
        return Timing.MedianMilliseconds(graph.Replay, warmup: 1, samples: 5, cuda: true) / (rounds * weights.Length);
    }
}
