using System.Text.Json.Nodes;
using Serving.Engine.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Tests.Shared;

/// A fixture checkpoint as transformers saves a *ForSequenceClassification model: the architecture renamed, id2label in
/// config.json, no LM head, and a random `score` head of one row per label. Score is that head, (labels, hidden)
/// float32: the model's logits are Score times its last hidden state.
public sealed class ClassifierFixture : IDisposable
{
    ClassifierFixture(TempDirectory folder, Tensor score) => (Folder, Score) = (folder, score);

    public TempDirectory Folder { get; }
    public Tensor Score { get; }

    /// problemType: config.json's problem_type (none when null).
    public static ClassifierFixture Create(string fixture, string[] labels, int seed = 7, string? problemType = null)
    {
        var from = Fixtures.Dir(fixture);
        var folder = new TempDirectory();
        foreach (var file in Directory.GetFiles(from).Where(f => !f.EndsWith(".safetensors") && !f.EndsWith("config.json")))
            File.Copy(file, Path.Combine(folder.Path, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(from, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray(config["architectures"]![0]!.GetValue<string>().Replace("ForCausalLM", "ForSequenceClassification"));
        config["id2label"] = new JsonObject(labels.Select((label, i) => KeyValuePair.Create(i.ToString(), (JsonNode?)label)));
        if (problemType is not null) config["problem_type"] = problemType;
        File.WriteAllText(Path.Combine(folder.Path, "config.json"), config.ToJsonString());
        using var checkpoint = SafetensorsCheckpoint.Open(from);
        var tensors = checkpoint.TensorNames.Where(name => !name.StartsWith("lm_head.")).ToDictionary(name => name, name => checkpoint.Read(name));
        var embeddings = tensors["model.embed_tokens.weight"];
        using var spread = 0.2.ToScalar();   // held through the call (SERV0002)
        using var score = randn([labels.Length, embeddings.size(1)], generator: new Generator((ulong)seed)).mul(spread);
        tensors["score.weight"] = score.to_type(embeddings.dtype);
        SafetensorsWriter.Write(Path.Combine(folder.Path, "model.safetensors"), tensors);
        var head = tensors["score.weight"].to_type(ScalarType.Float32);
        foreach (var tensor in tensors.Values) tensor.Dispose();
        return new ClassifierFixture(folder, head);
    }

    /// The head's logits for a hidden state.
    public float[] Logits(float[] hidden)
    {
        using var h = tensor(hidden);
        using var logits = Score.matmul(h);
        return logits.data<float>().ToArray();
    }

    public void Dispose()
    {
        Score.Dispose();
        Folder.Dispose();
    }
}
