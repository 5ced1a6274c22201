using System.CommandLine;
using Serving.Engine.Model;
using Serving.Training.Checkpoints;
using Serving.Training.Experiment;
using Serving.Training.Reports;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Commands;

/// `report` (the experiment's tables and charts) and `export-default` (the best uptrained GQA model as the server's
/// embedded default).
internal static class ReportCommands
{
    public static Command Report()
    {
        var command = new Command("report", "Tables (results.md) and charts of an experiment folder, with the engine benchmark's decode times.");
        var experiment = new Option<string>("--experiment") { Description = "Experiment folder (results.json, runs/).", Required = true };
        var bench = new Option<string?>("--bench") { Description = "Serving.Bench --json output for the variants' checkpoints." };
        var output = new Option<string>("--output") { Description = "Folder for results.md and the PNGs.", Required = true };
        foreach (var option in new Option[] { experiment, bench, output }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(experiment)!;
            var results = ExperimentResults.TryLoad(dir) ?? throw new ArgumentException($"no {ExperimentResults.FileName} in {dir}");
            var timings = parse.GetValue(bench) is { } path ? DecodeTimings.Read(path) : [];
            var outputDir = parse.GetValue(output)!;
            new ExperimentReport(results, timings, PlanOf(results)).Write(outputDir);
            foreach (var run in new[] { "mha", $"gqa{results.SweepGroups}-scratch" }.Select(r => Path.Combine(dir, "runs", r)).Where(Directory.Exists))
            {
                var log = new MetricsLog(run);
                TrainingCharts.LossCurve(log.Metrics(), log.Evals(), Path.Combine(outputDir, $"loss-{Path.GetFileName(run)}.png"), Path.GetFileName(run));
            }
            Console.WriteLine(File.ReadAllText(Path.Combine(outputDir, "results.md")));
            return 0;
        });
        return command;
    }

    /// The plan a results file was made by (the default plan with its shape, steps and sweep groups).
    public static ExperimentPlan PlanOf(ExperimentResults results) => new()
    {
        Shape = results.Shape,
        Pretraining = new TrainingOptions { Steps = results.PretrainingSteps, BatchSize = results.BatchSize, SequenceLength = results.SequenceLength },
        SweepGroups = results.SweepGroups,
    };

    public static Command ExportDefault()
    {
        var command = new Command("export-default", "Write the best uptrained GQA model of an experiment as the server's default model folder.");
        var experiment = new Option<string>("--experiment") { Description = "Experiment folder (results.json, runs/).", Required = true };
        var output = new Option<string>("--output") { Description = "Folder to write (e.g. src/Serving.Server/DefaultModel).", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Stored dtype of the weights (config.json says float32: it runs in float32 on CPU).", DefaultValueFactory = _ => "bfloat16" };
        var shard = new Option<int>("--max-shard-mb") { Description = "Largest safetensors file, in MiB.", DefaultValueFactory = _ => 15 };
        foreach (var option in new Option[] { experiment, output, dtype, shard }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var results = ExperimentResults.TryLoad(parse.GetValue(experiment)!) ?? throw new ArgumentException("no results.json in the experiment folder");
            var best = BestGqa(results);
            Export(best.Checkpoint, parse.GetValue(output)!, ModelDtype.Parse(parse.GetValue(dtype)!), parse.GetValue(shard) * (1L << 20));
            Console.WriteLine($"{best.Name} (held-out perplexity {best.Perplexity:F3}) -> {parse.GetValue(output)}");
            return 0;
        });
        return command;
    }

    /// The default model: the lowest held-out perplexity among the uptrained, mean-pooled conversions to the sweep's
    /// KV heads (the GQA the experiment studies at every alpha).
    public static VariantResult BestGqa(ExperimentResults results) =>
        results.Variants.Where(v => v.Method == "mean-pool" && v.Alpha > 0 && v.NumKVHeads == results.SweepGroups).MinBy(v => v.Perplexity)
        ?? throw new ArgumentException($"the experiment has no uptrained mean-pooled GQA-{results.SweepGroups} model yet");

    /// A checkpoint re-written for serving: weights in dtype (sharded under maxShardBytes), config.json naming float32,
    /// tokenizer files beside them; the output folder's old weights are removed first.
    public static void Export(string checkpoint, string output, ScalarType dtype, long maxShardBytes)
    {
        Directory.CreateDirectory(output);
        foreach (var old in Directory.GetFiles(output, "model*.safetensors*")) File.Delete(old);
        using var model = ModelLoader.LoadDecoder(checkpoint, "float32", CPU);
        CheckpointWriter.Write(model, output, dtype, maxShardBytes, runDtype: ScalarType.Float32);
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(checkpoint, file), Path.Combine(output, file), overwrite: true);
    }
}
