using System.Text.Json.Nodes;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Pooling;

/// A sentence-transformers Dense module (sentence_transformers.models.Dense) as its folder's config.json describes it:
/// after pooling, y = activation(W x + b) from in_features to out_features. EmbeddingGemma ends in two (768 -> 3072 ->
/// 768, no bias, the identity); older models in one with tanh, sentence-transformers' default.
public sealed record DenseModule(string Folder, int InFeatures, int OutFeatures, bool Bias, bool Tanh)
{
    const string Identity = "torch.nn.modules.linear.Identity", TanhActivation = "torch.nn.modules.activation.Tanh";

    /// The module in folder (its config.json); ModelLoadException naming the file for what is not served.
    public static DenseModule Read(string folder)
    {
        var path = Path.Combine(folder, "config.json");
        var fields = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
        if (fields?["in_features"]?.GetValue<int>() is not int inFeatures || fields["out_features"]?.GetValue<int>() is not int outFeatures
            || inFeatures < 1 || outFeatures < 1)
            throw new ModelLoadException($"{path}: a Dense module's config.json with positive in_features and out_features is expected");
        var activation = fields["activation_function"]?.GetValue<string>() ?? TanhActivation;
        if (activation is not (Identity or TanhActivation))
            throw new ModelLoadException($"{path}: activation_function {activation} is not served (only {Identity} and {TanhActivation})");
        return new DenseModule(folder, inFeatures, outFeatures, fields["bias"]?.GetValue<bool>() ?? true, activation == TanhActivation);
    }

    /// The module's weights (model.safetensors: linear.weight (out, in), linear.bias (out)) in float32 on device.
    public (Tensor Weight, Tensor? Bias) Load(Device device)
    {
        var path = Path.Combine(Folder, "model.safetensors");
        if (!File.Exists(path))
            throw new ModelLoadException($"{Folder}: the Dense module's weights are read from model.safetensors, which it lacks" +
                (File.Exists(Path.Combine(Folder, "pytorch_model.bin")) ? " (pytorch_model.bin is not read: convert it to safetensors)" : ""));
        using var file = SafetensorsFile.Open(path);
        Tensor Read(string name, long[] shape)
        {
            if (!file.Tensors.ContainsKey(name)) throw new ModelLoadException($"{path} has no tensor {name}");
            using var stored = file.Read(name);
            if (!stored.shape.SequenceEqual(shape))
                throw new ModelLoadException($"{path}: {name} is [{string.Join(", ", stored.shape)}], config.json says [{string.Join(", ", shape)}]");
            return stored.to(ScalarType.Float32, device);
        }
        return (Read("linear.weight", [OutFeatures, InFeatures]), Bias ? Read("linear.bias", [OutFeatures]) : null);
    }
}
