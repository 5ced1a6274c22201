using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Fills a model's parameters with random values, on its device, for preset models (no checkpoint).
/// Matrices get N(0, 1/fan-in) so activations keep unit scale through every layer; norm weights (every
/// "...norm.weight": layer norms, the final norm, q/k head norms) 1 + N(0, 0.1²), close to trained norms but not a
/// constant that would hide indexing errors; embeddings N(0, 1) and biases N(0, 0.02²).
internal static class RandomWeights
{
    public static void Fill(CausalLM model, long seed)
    {
        using var noGrad = no_grad();
        // the default generators, seeded: an explicit Generator would be a CPU one, which CUDA tensors refuse
        manual_seed(seed);
        if (model.Device.type == TorchSharp.DeviceType.CUDA) cuda.manual_seed_all(seed);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal))
            {
                parameter.normal_(1.0, 0.1);
            }
            else if (name == "embed_tokens.weight")
            {
                parameter.normal_(0.0, 1.0);
            }
            else if (parameter.dim() == 2)
            {
                parameter.normal_(0.0, 1.0 / Math.Sqrt(parameter.size(1)));
            }
            else
            {
                parameter.normal_(0.0, 0.02);
            }
        }
    }
}
