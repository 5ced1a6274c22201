using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Training.Experiment;

/// What the experiment measured of one variant: held-out loss and perplexity (the same windows for all), the
/// optimizer steps it was trained for in total, and the seconds they took.
internal sealed record VariantResult(string Name, int NumKVHeads, string Method, double? Alpha, int Steps, double TrainingSeconds,
    double Loss, double Perplexity, long EvalTokens, string Checkpoint);

/// results.json of an experiment folder: the plan's numbers and every variant measured so far; Complete once all are.
internal sealed record ExperimentResults
{
    public const string FileName = "results.json";

    public required string Shape { get; init; }
    public required long NumParameters { get; init; }
    public required int PretrainingSteps { get; init; }
    public required int BatchSize { get; init; }
    public required int SequenceLength { get; init; }
    /// KV heads of the alpha sweep and the model from scratch.
    public int SweepGroups { get; init; } = 2;
    public string Device { get; init; } = "";
    public string ComputeDtype { get; init; } = "";
    public bool Complete { get; init; }
    public IReadOnlyList<VariantResult> Variants { get; init; } = [];

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public VariantResult? Find(string name) => Variants.FirstOrDefault(v => v.Name == name);

    public ExperimentResults With(VariantResult result) =>
        this with { Variants = [.. Variants.Where(v => v.Name != result.Name), result] };

    public static ExperimentResults? TryLoad(string directory)
    {
        var path = Path.Combine(directory, FileName);
        return File.Exists(path) ? JsonSerializer.Deserialize<ExperimentResults>(File.ReadAllText(path), Json) : null;
    }

    public void Save(string directory) => File.WriteAllText(Path.Combine(directory, FileName), JsonSerializer.Serialize(this, Json));
}
