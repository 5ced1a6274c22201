using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Tests.Shared;

/// The reference checkpoints in ../shared/fixtures (beside the repository root), made by transformers.
/// SERVING_FIXTURES overrides the folder. One file, linked into every test project (see each .csproj).
public static class Fixtures
{
    public static readonly string[] Models = ["llama-gqa", "llama-mha", "llama-sp-mqa", "qwen3-gqa"];

    public static string Root { get; } = FindRoot();

    public static string Dir(string name) => Path.Combine(Root, name);

    public static FixtureReference Reference(string name) => ReferenceIn(Dir(name));

    /// The reference.json of a checkpoint folder anywhere (the benchmark runs them from a folder it is given).
    public static FixtureReference ReferenceIn(string directory) =>
        JsonSerializer.Deserialize<FixtureReference>(File.ReadAllText(Path.Combine(directory, "reference.json")))
        ?? throw new InvalidOperationException($"empty reference.json in {directory}");

    static string FindRoot()
    {
        var fromEnv = Environment.GetEnvironmentVariable("SERVING_FIXTURES");
        if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures"));
        throw new InvalidOperationException("Serving.sln not found above the test assembly; set SERVING_FIXTURES");
    }
}

public sealed record FixtureReference(
    [property: JsonPropertyName("prompts")] IReadOnlyList<FixturePrompt> Prompts,
    // every checkpoint fixture has tokenize and chat cases; only llama-mha-to-gqa2 (no checkpoint) has neither
    [property: JsonPropertyName("tokenize")] IReadOnlyList<FixtureTokenize> Tokenize,
    [property: JsonPropertyName("chat")] IReadOnlyList<FixtureChat> Chat,
    [property: JsonPropertyName("k_proj_layer0_sum")] double? KProjLayer0Sum,
    [property: JsonPropertyName("v_proj_layer0_sum")] double? VProjLayer0Sum);

public sealed record FixturePrompt(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("input_ids")] int[] InputIds,
    [property: JsonPropertyName("last_logits")] float[] LastLogits,
    [property: JsonPropertyName("logits_checksum")] LogitsChecksum LogitsChecksum,
    [property: JsonPropertyName("greedy_16")] int[] Greedy16,
    [property: JsonPropertyName("greedy_16_text")] string Greedy16Text);

public sealed record LogitsChecksum(
    [property: JsonPropertyName("sum")] double Sum,
    [property: JsonPropertyName("abs_sum")] double AbsSum);

public sealed record FixtureTokenize(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("ids")] int[] Ids);

public sealed record FixtureChat(
    [property: JsonPropertyName("messages")] IReadOnlyList<FixtureMessage> Messages,
    [property: JsonPropertyName("add_generation_prompt")] bool AddGenerationPrompt,
    [property: JsonPropertyName("rendered")] string Rendered,
    [property: JsonPropertyName("rendered_ids")] int[] RenderedIds);

public sealed record FixtureMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content);
