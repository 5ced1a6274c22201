using System.Text.Json.Nodes;

namespace Serving.Training.Experiment;

/// One decode measurement of the engine benchmark (Serving.Bench --json) on a variant's checkpoint.
internal sealed record DecodeTiming(string Variant, int Batch, int Context, double StepMs, double TokensPerSecond, long KVBytesPerToken);

/// Reads the benchmark's JSON: decode steps of the fused path (the plain one where no fused ran), matched to the
/// experiment's variants by their run folder name (…/runs/NAME/checkpoint).
internal static class DecodeTimings
{
    public static IReadOnlyList<DecodeTiming> Read(string benchJson)
    {
        var root = JsonNode.Parse(File.ReadAllText(benchJson))!;
        var kvBytes = root["capacity"]!.AsArray().ToDictionary(c => Variant((string)c!["model"]!), c => (long)c!["kvBytesPerToken"]!);
        var decodes = root["decode"]!.AsArray().Select(d => d!).ToList();
        var fused = decodes.Where(d => (string)d["path"]! == "fused").ToList();
        return (fused.Count > 0 ? fused : decodes).Select(d =>
        {
            var variant = Variant((string)d["model"]!);
            return new DecodeTiming(variant, (int)d["batch"]!, (int)d["contextLength"]!, (double)d["stepMs"]!, (double)d["tokensPerSecond"]!,
                kvBytes.GetValueOrDefault(variant));
        }).ToList();
    }

    // ".../runs/gqa2-mean-pool-a5/checkpoint" -> "gqa2-mean-pool-a5"
    static string Variant(string modelPath)
    {
        var parts = modelPath.TrimEnd('/').Split('/');
        return parts.Length >= 2 && parts[^1] == "checkpoint" ? parts[^2] : parts[^1];
    }
}
