using Serving.Engine.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Fills a model's parameters with random values, on its device, for preset models (no checkpoint); and the start of
/// training (FillForTraining).
/// Matrices get N(0, 1/fan-in) so activations keep unit scale through every layer; norm weights (every
/// "...norm.weight": layer norms, the final norm, q/k head norms) 1 + N(0, 0.1²), close to trained norms but not a
/// constant that would hide indexing errors; embeddings N(0, 1) and biases N(0, 0.02²).
///
/// A tensor-parallel rank draws what one device would draw for the whole model (the same seed, every parameter of
/// the whole model in the same order, on its own device) and keeps its shard of each: the same model at every size.
internal static class RandomWeights
{
    // the default generators are the process's: one rank draws at a time, from a freshly seeded generator. On the CPU
    // an explicit generator is used as well, so a thread drawing elsewhere (a sampler, a test) cannot take values
    // from the middle of a model's sequence; CUDA tensors refuse a CPU generator and keep the default CUDA one.
    static readonly object Drawing = new();

    /// Standard deviation of transformers' initialiser (initializer_range) for Llama-style models.
    public const double TrainingInitStd = 0.02;

    /// The initialisation training starts from, as transformers' LlamaPreTrainedModel does: every matrix and the
    /// embeddings N(0, 0.02²), norm weights 1, biases 0; one device (training does not shard). On the CPU a generator
    /// of its own, seeded (the values the seeded default generator gives, but nothing another thread draws or seeds
    /// meanwhile, an engine starting beside it for one, can move them); CUDA tensors refuse a CPU generator, so there
    /// the default ones, seeded.
    public static void FillForTraining(CausalLM model, long seed)
    {
        using var noGrad = no_grad();
        lock (Drawing)
        {
            using var generator = model.Device.type == DeviceType.CPU ? new Generator((ulong)seed) : null;
            if (generator is null)
            {
                manual_seed(seed);
                if (model.Device.type == DeviceType.CUDA) cuda.manual_seed_all(seed);
            }
            foreach (var (name, parameter) in model.named_parameters())
            {
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) parameter.fill_(HeldScalars.One);
                else if (parameter.dim() == 2) parameter.normal_(0.0, TrainingInitStd, generator);
                else parameter.zero_();
            }
        }
    }

    public static void Fill(CausalLM model, IReadOnlyList<WeightBinding> layout, long seed)
    {
        using var noGrad = no_grad();
        lock (Drawing)
        {
            // the default generators, seeded: an explicit Generator would be a CPU one, which CUDA tensors refuse
            manual_seed(seed);
            if (model.Device.type == DeviceType.CUDA) cuda.manual_seed_all(seed);
            using var generator = model.Device.type == DeviceType.CPU ? new Generator((ulong)seed) : null;
            if (model.Shard.Size == 1)
            {
                foreach (var (name, parameter) in model.named_parameters()) Draw(name, parameter, generator);
                return;
            }
            FillShard(model, layout, generator);
        }
    }

    // every parameter of the whole model drawn in full, in the whole model's order, then cut to the rank's shard as a
    // checkpoint would be (each binding's rows of the full parameter are that checkpoint tensor)
    static void FillShard(CausalLM model, IReadOnlyList<WeightBinding> layout, Generator? generator)
    {
        var shard = model.Shard;
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var bindings = layout.ToLookup(binding => binding.ParameterName);
        using var whole = new CausalLM(shard.Model, model.Dtype, new Device(DeviceType.META));   // names and shapes only
        foreach (var parameter in parameters.Values) parameter.zero_();   // rows no rank's part fills stay zero
        foreach (var (name, shape) in whole.named_parameters().Select(p => (p.name, p.parameter.shape)))
        {
            using var scope = NewDisposeScope();
            var values = empty(shape, model.Dtype, model.Device);
            Draw(name, values, generator);
            foreach (var binding in bindings[name])
            {
                var tensor = values.narrow(0, binding.RowOffset, binding.Shape[0]);       // the checkpoint tensor's values
                foreach (var copy in shard.Copies(binding))
                {
                    var part = copy.Slice.Of(tensor);
                    parameters[name].narrow(0, copy.DestinationRow, part.shape[0]).copy_(part);
                }
            }
        }
    }

    static void Draw(string name, Tensor parameter, Generator? generator)
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal))
        {
            parameter.normal_(1.0, 0.1, generator);
        }
        else if (name == "embed_tokens.weight")
        {
            parameter.normal_(0.0, 1.0, generator);
        }
        else if (parameter.dim() == 2)
        {
            parameter.normal_(0.0, 1.0 / Math.Sqrt(parameter.size(1)), generator);
        }
        else
        {
            parameter.normal_(0.0, 0.02, generator);
        }
    }
}
