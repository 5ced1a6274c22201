using Serving.Engine;
using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// One linear layer shape at one token count: the product with the library's default algorithm and as a tuned decode
/// step runs it, milliseconds per launch and the weight bytes read per second. A 16-bit weight's default is
/// TorchSharp's linear (cuBLAS's own algorithm) and its tuned product MatmulTuning's choice; an FP8 one's (Weights
/// "fp8", -q fp8; "fp8 channel", -q fp8-channel, a scale per output channel; "fp8 block", -q fp8-block, per 128 x 128
/// block) both run Fp8Products.Linear: the default cuBLASLt's first choice on its input quantized to FP8 (a
/// kernel more), the tuned one as a step runs it (the few-rows kernel up to 8 rows, else the fastest candidate).
internal sealed record LinearResult(string Model, string Layer, string Weights, int Tokens, int OutFeatures, int InFeatures, double Milliseconds,
    double BytesPerSecond, double TunedMilliseconds, double TunedBytesPerSecond);

/// How fast the decode step's matrix products read their weights, layer by layer (--linear): at decode batch sizes a
/// linear layer is a read of its weights, so this is the step's largest part against the copy bandwidth. Each timing
/// cycles through copies of the weight that together exceed the L2 cache (every launch reads HBM), captured as one
/// CUDA graph of back-to-back launches as a decode step's graph replays them (the host's launch cost stays out).
internal static class LinearBenchmark
{
    const double BytesPerTiming = 512e6;   // weight copies per shape: about this much, ten times H200's L2
    const int LaunchesPerTiming = 64;

    /// quantization fp8, fp8-channel or fp8-block: the decoder's projections stored as FP8 (as -q stores them; the LM
    /// head stays 16-bit); null: in dtype.
    public static IEnumerable<LinearResult> Run(string model, ModelConfig config, ScalarType dtype, CudaDevice cudaDevice, Device device, IReadOnlyList<int> tokenCounts,
        string? quantization)
    {
        var fp8 = quantization is "fp8" or "fp8-channel" or "fp8-block";
        using var stream = CudaStream.Create(cudaDevice);
        stream.MakeCurrent();
        using var tuning = new MatmulTuning(stream.Handle, device);
        using var products = fp8 ? new Fp8Products(device, dtype) : null;
        foreach (var (layer, n, k) in Layers(config))
        {
            if (products is not null && layer != "lm_head")
            {
                foreach (var result in RunFp8(products, model, layer, n, k, dtype, device, tokenCounts, quantization!)) yield return result;
                continue;
            }
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
                yield return new LinearResult(model, layer, ModelDtype.Name(dtype), m, n, k, ms, 2.0 * n * k / (ms / 1e3), tuned, 2.0 * n * k / (tuned / 1e3));
            }
        }
    }

    static IEnumerable<LinearResult> RunFp8(Fp8Products products, string model, string layer, int n, int k, ScalarType dtype, Device device,
        IReadOnlyList<int> tokenCounts, string quantization)
    {
        using var scope = NewDisposeScope();
        var copies = (int)Math.Clamp(Math.Ceiling(BytesPerTiming / ((double)n * k)), 2, LaunchesPerTiming);
        var weights = Enumerable.Range(0, copies).Select(_ =>
        {
            using var inner = NewDisposeScope();
            var weight = randn(n, k, dtype: dtype, device: device);
            return products.QuantizeWeight(weight, quantization == "fp8" ? null : Fp8Products.CheckpointScales(weight, perBlock: quantization == "fp8-block"));
        }).ToArray();
        try
        {
            products.FewRowsKernel = false;
            products.Tune([], []);   // cuBLASLt's first choices
            var inputs = tokenCounts.Select(m => randn(m, k, dtype: dtype, device: device)).ToArray();
            var first = inputs.Select(x => PerLaunch(w => products.Linear(x, w, null).Dispose(), weights)).ToArray();
            products.FewRowsKernel = true;
            products.Tune(weights, tokenCounts);
            for (var i = 0; i < tokenCounts.Count; i++)
            {
                var tuned = PerLaunch(w => products.Linear(inputs[i], w, null).Dispose(), weights);
                yield return new LinearResult(model, layer, quantization == "fp8" ? "fp8" : quantization.Replace('-', ' '), tokenCounts[i], n, k, first[i], (double)n * k / (first[i] / 1e3), tuned, (double)n * k / (tuned / 1e3));
            }
        }
        finally
        {
            foreach (var w in weights) w.Dispose();
        }
    }

    // the decoder's linear layers (q, k, v fused; gate and up fused: an expert's where every layer is a mixture's) and
    // the LM head
    static IEnumerable<(string Layer, int N, int K)> Layers(ModelConfig c)
    {
        var (mlp, width) = c.NumExperts > 0 && Enumerable.Range(0, c.NumHiddenLayers).All(c.IsExpertLayer)
            ? ("expert_", c.ExpertIntermediateSize) : ("", c.IntermediateSize);
        return
        [
            ("qkv_proj", c.QSize + 2 * c.KVSize, c.HiddenSize),
            ("o_proj", c.HiddenSize, c.QSize),
            (mlp + "gate_up_proj", 2 * width, c.HiddenSize),
            (mlp + "down_proj", c.HiddenSize, width),
            ("lm_head", c.VocabSize, c.HiddenSize),
        ];
    }

    // Milliseconds per launch: rounds over every weight copy (at least LaunchesPerTiming launches) captured as one
    // graph; median of five replays.
    static double PerLaunch<TWeight>(Action<TWeight> launch, TWeight[] weights)
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
