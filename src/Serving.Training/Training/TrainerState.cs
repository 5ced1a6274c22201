using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Training.Training;

/// Where a run stands (trainer_state.json in its checkpoint, beside the weights and optimizer.safetensors): the
/// recipe, the steps done, and what it started from.
internal sealed record TrainerState
{
    public const string FileName = "trainer_state.json";

    public required TrainingOptions Options { get; init; }
    /// Optimizer steps done.
    public int Step { get; init; }
    public long TokensSeen { get; init; }
    /// Seconds spent training, over all pieces of the run.
    public double TrainingSeconds { get; init; }
    /// "scratch" or the checkpoint folder the run started from.
    public required string StartedFrom { get; init; }
    public string ComputeDtype { get; init; } = "float32";
    /// Held-out evaluations so far.
    public IReadOnlyList<EvalPoint> Evals { get; init; } = [];

    public bool Finished => Step >= Options.Steps;

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public static TrainerState? TryLoad(string checkpointDir)
    {
        var path = Path.Combine(checkpointDir, FileName);
        return File.Exists(path) ? JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json) : null;
    }

    public void Save(string checkpointDir) =>
        File.WriteAllText(Path.Combine(checkpointDir, FileName), JsonSerializer.Serialize(this, Json));
}

/// One held-out evaluation: mean negative log-likelihood per token and its perplexity.
internal sealed record EvalPoint(int Step, double Loss, double Perplexity, long Tokens);
