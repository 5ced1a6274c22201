using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// The tensors of a checkpoint folder: model.safetensors, or the shards listed by model.safetensors.index.json.
/// Every tensor name resolves to exactly one file; reads copy one tensor at a time out of the mapped file.
/// A transformers base model's checkpoint (LlamaModel, Qwen3Model: what sentence-transformers saves for embedding
/// models) names its tensors without the "model." prefix, and a multimodal checkpoint's text decoder (gemma3) under
/// "language_model.model." (transformers before 4.52) or "model.language_model." (after), its LM head under
/// "language_model."; they are found here under the names the layouts use, as vLLM maps them. Other tensors (a vision
/// tower) keep their names and are never bound.
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    readonly IReadOnlyList<SafetensorsFile> _files;
    readonly Dictionary<string, SafetensorsFile> _fileOf;
    readonly Dictionary<string, string> _storedName = new(StringComparer.Ordinal);   // layout name -> name in the file, where they differ

    public string Directory { get; }
    public IReadOnlyCollection<string> TensorNames => _fileOf.Keys;

    SafetensorsCheckpoint(string directory, IReadOnlyList<SafetensorsFile> files, Dictionary<string, SafetensorsFile> fileOf)
    {
        Directory = directory;
        _files = files;
        _fileOf = fileOf;
        if (fileOf.ContainsKey("model.embed_tokens.weight")) return;
        var decoder = DecoderPrefixes.FirstOrDefault(prefix => fileOf.ContainsKey(prefix + "embed_tokens.weight"));
        if (decoder is null) return;
        _fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (var (stored, file) in fileOf)
        {
            var name = stored.StartsWith(decoder, StringComparison.Ordinal) && !stored.StartsWith("lm_head.", StringComparison.Ordinal)
                ? "model." + stored[decoder.Length..]
                : stored.StartsWith("language_model.lm_head.", StringComparison.Ordinal) ? stored["language_model.".Length..]
                : stored;
            _fileOf[name] = file;
            if (name != stored) _storedName[name] = stored;
        }
    }

    /// Where a checkpoint that does not name its decoder "model." names it: a base model (no prefix), a multimodal
    /// checkpoint's text decoder (both of transformers' layouts).
    static readonly string[] DecoderPrefixes = ["", "language_model.model.", "model.language_model."];

    string Stored(string name) => _storedName.GetValueOrDefault(name, name);

    public static SafetensorsCheckpoint Open(string directory)
    {
        var index = Path.Combine(directory, IndexFile);
        if (File.Exists(index)) return OpenSharded(directory, index);
        var single = Path.Combine(directory, SingleFile);
        if (!File.Exists(single))
            throw new CheckpointException($"no {SingleFile} or {IndexFile} in {directory}");
        var file = SafetensorsFile.Open(single);
        return new SafetensorsCheckpoint(directory, [file], file.Tensors.Keys.ToDictionary(name => name, _ => file));
    }

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public SafetensorsTensorInfo Info(string name) =>
        _fileOf.TryGetValue(name, out var file) ? file.Tensors[Stored(name)]
            : throw new CheckpointException($"missing weight '{name}' in {Directory}");

    /// A new CPU tensor in the stored dtype; the caller owns it.
    public Tensor Read(string name) =>
        _fileOf.TryGetValue(name, out var file) ? file.Read(Stored(name))
            : throw new CheckpointException($"missing weight '{name}' in {Directory}");

    /// A new CPU tensor holding a slice of the named tensor (a tensor-parallel rank's part), reading only its bytes.
    internal Tensor Read(string name, TensorSlice slice) =>
        _fileOf.TryGetValue(name, out var file) ? file.Read(Stored(name), slice)
            : throw new CheckpointException($"missing weight '{name}' in {Directory}");

    static SafetensorsCheckpoint OpenSharded(string directory, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var files = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shard) in weightMap)
            {
                if (!files.TryGetValue(shard, out var file))
                    files[shard] = file = SafetensorsFile.Open(Path.Combine(directory, shard));
                fileOf[tensor] = file.Tensors.ContainsKey(tensor) ? file
                    : throw new CheckpointException($"{IndexFile} maps '{tensor}' to {shard}, which has no such tensor");
            }
        }
        catch
        {
            foreach (var file in files.Values) file.Dispose();
            throw;
        }
        return new SafetensorsCheckpoint(directory, files.Values.ToArray(), fileOf);
    }

    static IReadOnlyList<(string Tensor, string Shard)> ReadWeightMap(string indexPath)
    {
        try
        {
            var map = JsonNode.Parse(File.ReadAllText(indexPath))?["weight_map"] as JsonObject
                ?? throw new CheckpointException($"{IndexFile}: no 'weight_map' object");
            return map.Select(entry => (entry.Key, entry.Value is JsonValue v && v.TryGetValue(out string? shard)
                && shard == Path.GetFileName(shard) ? shard
                : throw new CheckpointException($"{IndexFile}: weight_map entry '{entry.Key}' is not a file name in the folder"))).ToArray();
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{IndexFile}: invalid JSON ({e.Message})", e);
        }
    }

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }
}
