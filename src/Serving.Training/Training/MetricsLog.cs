using System.Globalization;
using System.Text.Json;

namespace Serving.Training.Training;

/// One progress point of a run: the mean training loss over the steps since the last point, the learning rate
/// and gradient norm of the last step, throughput, and seconds since the run (all its pieces) began.
internal sealed record MetricsPoint(int Step, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, double Seconds);

/// metrics.jsonl and eval.jsonl of a run folder: appended line by line, read back for charts and reports. Lines
/// past the checkpoint's step (written before a stop and redone after resuming) are dropped when a run resumes.
internal sealed class MetricsLog(string runDir)
{
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public string MetricsPath => Path.Combine(runDir, "metrics.jsonl");
    public string EvalPath => Path.Combine(runDir, "eval.jsonl");

    public void Append(MetricsPoint point) => File.AppendAllText(MetricsPath, JsonSerializer.Serialize(point, Json) + "\n");

    public void Append(EvalPoint point) => File.AppendAllText(EvalPath, JsonSerializer.Serialize(point, Json) + "\n");

    public IReadOnlyList<MetricsPoint> Metrics() => Read<MetricsPoint>(MetricsPath);

    public IReadOnlyList<EvalPoint> Evals() => Read<EvalPoint>(EvalPath);

    /// Keeps only the points up to step (what the checkpoint being resumed had seen).
    public void TruncateAfter(int step)
    {
        Rewrite(MetricsPath, Metrics().Where(p => p.Step <= step));
        Rewrite(EvalPath, Evals().Where(p => p.Step <= step));
    }

    static void Rewrite<T>(string path, IEnumerable<T> points)
    {
        if (File.Exists(path)) File.WriteAllLines(path, points.Select(p => JsonSerializer.Serialize(p, Json)));
    }

    static List<T> Read<T>(string path) => File.Exists(path)
        ? File.ReadLines(path).Where(line => line.Length > 0).Select(line => JsonSerializer.Deserialize<T>(line, Json)!).ToList()
        : [];

    public static string Format(MetricsPoint p) => string.Create(CultureInfo.InvariantCulture,
        $"step {p.Step,6}  loss {p.Loss:F4}  lr {p.LearningRate:E2}  grad {p.GradNorm:F3}  {p.TokensPerSecond / 1000:F1}k tok/s  {p.Seconds:F0}s");
}
