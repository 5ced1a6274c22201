using System.Text.Json.Nodes;
using Serving.Training.Checkpoints;
using Serving.Training.Commands;
using Serving.Training.Corpus;
using Serving.Training.Experiment;
using Serving.Training.Tests.Support;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Tests.Experiment;

public sealed class ExperimentTests
{
    [Fact]
    public void ThePlanHasEveryVariantOfThePaperAndItsStepCounts()
    {
        var plan = Plan(pretrainingSteps: 400);
        var variants = plan.Variants();
        Assert.Equal(1 + 9 + 9 + 2 + 1, variants.Count);
        Assert.Equal(["mean-pool", "first-head", "random"], variants.Where(v => v.NumKVHeads == 1 && v.Alpha == 0).Select(v => v.Method));
        Assert.Equal([0, 0.025, 0.05, 0.1], variants.Where(v => v.NumKVHeads == 2 && v.Method == "mean-pool").Select(v => v.Alpha!.Value).Order());
        Assert.Equal((20, 10, 40), (plan.Uptraining(0.05).Steps, plan.Uptraining(0.025).Steps, plan.Uptraining(0.10).Steps));
        Assert.Equal(420, plan.Scratch().Steps);
        Assert.Equal(400 + 9 * 20 + 10 + 40 + 420, plan.TotalSteps());
        Assert.Equal("mqa-random-a5", ExperimentPlan.Name(1, "random", 0.05));
        Assert.Equal("gqa2-mean-pool-a2.5", ExperimentPlan.Name(2, "mean-pool", 0.025));
    }

    [Fact]
    public void CalibrationFitsTheWholePlanIntoTheBudgetInMultiplesOfForty()
    {
        // 2.625 steps of the plan per pretraining step: 300 s at 50 ms per step fit 6000 / 2.625 = 2285 -> 2280
        Assert.Equal(2280, StepCalibration.PretrainingSteps(n => Plan(n), trainingSeconds: 300, secondsPerStep: 0.05));
        Assert.Equal(40, StepCalibration.PretrainingSteps(n => Plan(n), trainingSeconds: 1, secondsPerStep: 1));
    }

    /// The whole experiment at toy scale: every variant trained or converted and measured, resumable when cut
    /// short, and the report's tables, orderings and charts made from its results and a benchmark file.
    [Fact]
    public void ATinyExperimentRunsEveryVariantResumesAndReports()
    {
        using var corpusDir = new TempDirectory();
        using var output = new TempDirectory();
        var corpus = new TokenizedCorpus(corpusDir.Path);
        ByteLevelBpeTokenizer.Write(corpus.TokenizerDir, vocabSize: 264, numSpecial: 8, maxLength: 64);
        TokenFile.Write(corpus.TrainTokens, TinyCorpus.Tokens(6000, seed: 1));
        TokenFile.Write(corpus.HeldOutTokens, TinyCorpus.Tokens(1200, seed: 2));
        var plan = Plan(pretrainingSteps: 40) with { Shape = "tiny" };

        var cut = new ExperimentRunner(plan, output.Path, corpus, ScalarType.Float32, CPU, maxSeconds: 0, charts: false, TextWriter.Null);
        Assert.False(cut.Run());
        Assert.True(new ExperimentRunner(plan, output.Path, corpus, ScalarType.Float32, CPU, maxSeconds: null, charts: false, TextWriter.Null).Run());

        var results = ExperimentResults.TryLoad(output.Path)!;
        Assert.True(results.Complete);
        Assert.Equal(plan.Variants().Select(v => v.Name).Order(), results.Variants.Select(v => v.Name).Order());
        Assert.All(results.Variants, v => Assert.True(double.IsFinite(v.Perplexity) && v.Perplexity > 1, v.Name));
        Assert.Equal(42, results.Find("gqa2-mean-pool-a5")!.Steps);
        Assert.Equal(40, results.Find("mqa-random-a0")!.Steps);
        Assert.Equal(42, results.Find("gqa2-scratch")!.Steps);
        Assert.Equal(1, Engine.Config.ModelConfig.Load(results.Find("mqa-first-head-a5")!.Checkpoint).NumKeyValueHeads);

        var bench = Bench(output.Path, [("mha", 8, 2.0), ("gqa4-mean-pool-a5", 4, 1.2), ("gqa2-mean-pool-a5", 2, 0.8), ("mqa-mean-pool-a5", 1, 0.7)]);
        new ExperimentReport(results, DecodeTimings.Read(bench), ReportCommands.PlanOf(results)).Write(output.File("report"));
        var markdown = File.ReadAllText(output.File("report/results.md"));
        Assert.Contains("| MHA (teacher) | 8 |", markdown);
        Assert.Contains("| 2.00 |", markdown);
        Assert.Contains("decode time per step by KV heads: 8 -> 2.00 ms, 4 -> 1.20 ms, 2 -> 0.80 ms, 1 -> 0.70 ms", markdown);
        Assert.Contains("GQA-2, methods at alpha 5% (best first)", markdown);
        foreach (var png in new[] { "figure4-methods.png", "figure5-alpha.png", "figure6-groups-time.png" })
            Assert.True(new FileInfo(output.File("report/" + png)).Length > 1000, png);

        using var defaultModel = new TempDirectory();
        ReportCommands.Export(ReportCommands.BestGqa(results).Checkpoint, defaultModel.Path, ScalarType.BFloat16, maxShardBytes: 20_000);
        Assert.True(File.Exists(defaultModel.File("model.safetensors.index.json")));
        Assert.Equal("float32", JsonNode.Parse(File.ReadAllText(defaultModel.File("config.json")))!["torch_dtype"]!.GetValue<string>());
        using var served = Engine.Model.ModelLoader.Load(defaultModel.Path);
        Assert.Equal((ScalarType.Float32, 2), (served.Dtype, served.Config.NumKeyValueHeads));
    }

    static ExperimentPlan Plan(int pretrainingSteps) => new()
    {
        Shape = "base",
        Pretraining = new TrainingOptions { Steps = pretrainingSteps, BatchSize = 4, SequenceLength = 32, LearningRate = 1e-2, WarmupSteps = 4, EvalWindows = 8, LogEvery = 5 },
    };

    // a Serving.Bench --json file with one fused decode measurement per variant checkpoint
    static string Bench(string directory, (string Variant, int KVHeads, double StepMs)[] rows)
    {
        var path = Path.Combine(directory, "bench.json");
        string Model(string v) => $"/gpu/experiment/runs/{v}/checkpoint";
        File.WriteAllText(path, new JsonObject
        {
            ["decode"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
            {
                ["model"] = Model(r.Variant), ["path"] = "fused", ["batch"] = 256, ["contextLength"] = 2048, ["stepMs"] = r.StepMs,
                ["tokensPerSecond"] = 256 / (r.StepMs / 1000),
            }).ToArray()),
            ["capacity"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject { ["model"] = Model(r.Variant), ["kvBytesPerToken"] = 2L * 2 * 2 * r.KVHeads * 8 }).ToArray()),
        }.ToJsonString());
        return path;
    }
}
