using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Fills a model's parameters with random values, on its device: preset models (no checkpoint) and the start of
/// training.
internal static class RandomWeights
{
    /// Standard deviation of transformers' initialiser (initializer_range) for Llama-style models.
    public const double TrainingInitStd = 0.02;

    /// The initialisation training starts from, as transformers' LlamaPreTrainedModel does: every matrix and the
    /// embeddings N(0, 0.02²), norm weights 1, biases 0; on the model's device, from the seeded default generator.
    public static void FillForTraining(CausalLM model, long seed)
    {
        using var noGrad = no_grad();
        Seed(model, seed);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) parameter.fill_(1.0);
            else if (parameter.dim() == 2) parameter.normal_(0.0, TrainingInitStd);
            else parameter.zero_();
        }
    }

    /// Preset weights: matrices N(0, 1/fan-in) so activations keep unit scale through every layer; norm weights (every
    /// "...norm.weight": layer norms, the final norm, q/k head norms) 1 + N(0, 0.1²), close to trained norms but not a
    /// constant that would hide indexing errors; embeddings N(0, 1) and biases N(0, 0.02²).
    public static void Fill(CausalLM model, long seed)
    {
        using var noGrad = no_grad();
        Seed(model, seed);
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

    // the default generators, seeded: an explicit Generator would be a CPU one, which CUDA tensors refuse
    static void Seed(CausalLM model, long seed)
    {
        manual_seed(seed);
        if (model.Device.type == TorchSharp.DeviceType.CUDA) cuda.manual_seed_all(seed);
    }
}
