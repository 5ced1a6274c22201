using Serving.Engine.Conversion;
using Serving.Engine.Model;
using Serving.Training.Tests.Support;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Tests.Training;

public sealed class TrainerTests
{
    [Fact]
    public void TrainingLowersTheLossOnATinyCorpusWithinAFewSteps()
    {
        using var dir = new TempDirectory();
        var state = Train(dir.Path, TinyCorpus.Options(steps: 30), TinyCorpus.Config(numKVHeads: 2));
        var metrics = new MetricsLog(dir.Path).Metrics();
        Assert.Equal(30, metrics.Count);
        Assert.True(metrics[^1].Loss < metrics[0].Loss * 0.7, $"loss {metrics[0].Loss:F3} -> {metrics[^1].Loss:F3}");
        Assert.True(state.Evals[^1].Perplexity < Math.Exp(metrics[0].Loss));
        Assert.True(File.Exists(Path.Combine(dir.Path, "loss.png")));
    }

    /// What training wrote is a checkpoint the engine serves, computing what the training model computed.
    [Fact]
    public void ACheckpointLoadsInTheEngineAndGivesTheTrainingModelsLogits()
    {
        using var dir = new TempDirectory();
        Train(dir.Path, TinyCorpus.Options(steps: 3), TinyCorpus.Config(numKVHeads: 2));
        var checkpoint = Path.Combine(dir.Path, "checkpoint");
        var ids = TinyCorpus.Tokens(32, seed: 9);
        using var training = TrainingModel.Load(checkpoint, ScalarType.Float32, CPU, 32);
        using var engine = ModelLoader.Load(checkpoint, "float32");
        using var cache = engine.CreateKVCache(numBlocks: 4, blockSize: 16);
        using var scope = NewDisposeScope();
        var expected = training.Logits(tensor(ids.Select(t => (long)t).ToArray()).view(1, -1));
        var served = engine.ForwardAllLogits(StepInputs.Build([new StepSequence(ids, 0, ids.Length, [2, 0])], 16), cache);
        Assert.True((expected - served).abs().max().item<float>() <= 1e-5f);
        Assert.Equal(2, engine.Config.NumKeyValueHeads);
    }

    /// A run stopped by its time limit and run again ends with the weights of a run that never stopped.
    [Fact]
    public void AResumedRunEndsWhereAnUninterruptedOneDoes()
    {
        using var whole = new TempDirectory();
        using var pieces = new TempDirectory();
        var options = TinyCorpus.Options(steps: 6);
        Train(whole.Path, options, TinyCorpus.Config());
        var stopped = Train(pieces.Path, options, TinyCorpus.Config(), maxSeconds: 0);
        Assert.Equal(1, stopped.Step);
        var finished = Train(pieces.Path, options with { LearningRate = 99 }, TinyCorpus.Config());   // the saved recipe wins
        Assert.Equal(6, finished.Step);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole.Path, "checkpoint", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(pieces.Path, "checkpoint", "model.safetensors")));
        Assert.Equal(6, new MetricsLog(pieces.Path).Metrics().Count);
        var again = Train(pieces.Path, options, TinyCorpus.Config());                                  // a finished run stays as it is
        Assert.Equal((6, 1), (again.Step, new MetricsLog(pieces.Path).Evals().Count));
    }

    /// Uptraining starts from a converted checkpoint (GQA-2 of an MHA model), keeps its shape, and resumes.
    [Fact]
    public void UptrainingContinuesAConvertedCheckpointAndResumes()
    {
        using var teacher = new TempDirectory();
        using var converted = new TempDirectory();
        using var uptrained = new TempDirectory();
        Train(teacher.Path, TinyCorpus.Options(steps: 4), TinyCorpus.Config());
        GqaConversion.ConvertCheckpoint(Path.Combine(teacher.Path, "checkpoint"), converted.Path, numGroups: 2);
        var options = TinyCorpus.Options(steps: 4) with { LearningRate = 3e-3 };
        var first = Train(uptrained.Path, options, config: null, initFrom: converted.Path, maxSeconds: 0);
        Assert.Equal((1, converted.Path), (first.Step, first.StartedFrom));
        var done = Train(uptrained.Path, options, config: null, initFrom: converted.Path);
        Assert.Equal(4, done.Step);
        using var model = ModelLoader.Load(Path.Combine(uptrained.Path, "checkpoint"), "float32");
        Assert.Equal(2, model.Config.NumKeyValueHeads);
        Assert.True(double.IsFinite(done.Evals[^1].Loss));
    }

    static TrainerState Train(string dir, TrainingOptions options, Engine.Config.ModelConfig? config, string? initFrom = null, double? maxSeconds = null)
    {
        using var train = new TokenWindows(TinyCorpus.Tokens(4000, seed: 1), CPU);
        using var heldOut = new TokenWindows(TinyCorpus.Tokens(1000, seed: 2), CPU);
        var run = new TrainingRun { OutputDir = dir, Options = options, Config = config, InitFrom = initFrom, MaxSeconds = maxSeconds };
        return new Trainer(run, train, heldOut, TextWriter.Null).Run();
    }
}
