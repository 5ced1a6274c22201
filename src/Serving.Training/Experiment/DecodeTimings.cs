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
        var kvBytes = root["Capacity"]!.AsArray().ToDictionary(c => Variant((string)c!["Model"]!), c => (long)c!["KVBytesPerToken"]!);
        var decodes = root["Decode"]!.AsArray().Select(d => d!).ToList();
        var fused = decodes.Where(d => (string)d["Path"]! == "fused").ToList();
        return (fused.Count > 0 ? fused : decodes).Select(d =>
        {
            var variant = Variant((string)d["Model"]!);
            return new DecodeTiming(variant, (int)d["Batch"]!, (int)d["ContextLength"]!, (double)d["StepMs"]!, (double)d["TokensPerSecond"]!,
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
