using Serving.Engine.Config;

namespace Serving.Engine.Pooling;

/// What the engine serves (vLLM's --runner): text generation, or pooling (embeddings of whole prompts). One engine
/// serves one: a pooling runner loads no LM head and refuses generation requests, a generate runner refuses
/// pooling requests.
public enum RunnerType
{
    Generate,
    Pooling,
}

public static class RunnerTypes
{
    /// vLLM's names: auto, generate, pooling. Null stands for auto.
    public static RunnerType? Parse(string name) => name switch
    {
        "auto" => null,
        "generate" => RunnerType.Generate,
        "pooling" => RunnerType.Pooling,
        _ => throw new ArgumentException($"runner '{name}' is not one of auto, generate, pooling"),
    };

    public static string Name(this RunnerType runner) => runner.ToString().ToLowerInvariant();

    /// auto, as vLLM decides it from the architecture's name: a transformers base model (LlamaModel, Qwen3Model,
    /// MistralModel: no LM head) or a sequence classifier (*ForSequenceClassification) pools, a *ForCausalLM generates.
    /// A classifier has no LM head to generate with.
    public static RunnerType Resolve(RunnerType? requested, ModelConfig config)
    {
        if (config.IsClassifier && requested == RunnerType.Generate)
            throw new ModelLoadException($"{config.Architecture} is a sequence classifier (no LM head): it serves /classify under --runner pooling, not generation");
        if (!config.IsCausal && requested == RunnerType.Generate)
            throw new ModelLoadException("the model attends both ways (is_causal: false): it embeds under --runner pooling, it cannot generate");
        return requested ?? (Architectures.ArchitectureRegistry.IsBaseModel(config.Architecture) || config.IsClassifier || !config.IsCausal
            ? RunnerType.Pooling : RunnerType.Generate);
    }
}
