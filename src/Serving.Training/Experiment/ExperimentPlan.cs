using System.Globalization;
using Serving.Engine.Conversion;
using Serving.Training.Training;

namespace Serving.Training.Experiment;

/// One model of the experiment. Method: "mha" (the teacher), "mean-pool" / "first-head" / "random" (a conversion,
/// then uptraining for Alpha of the teacher's steps; Alpha 0 is the conversion itself), "scratch" (GQA trained from
/// scratch for the teacher's steps plus the main alpha's).
internal sealed record Variant(string Name, int NumKVHeads, string Method, double? Alpha)
{
    public bool IsConversion => Method is "mean-pool" or "first-head" or "random";
}

/// The GQA paper's experiment (Ainslie et al., 2023) at our scale: an MHA teacher pretrained from scratch;
/// conversions to GQA-4, GQA-2 and MQA (KV heads = groups) by each KVHeadInit; uptraining of each at MainAlpha; an
/// alpha sweep of the mean-pooled SweepGroups conversion; and SweepGroups trained from scratch for as many steps
/// as teacher plus uptraining took. Folders under the output: runs/NAME (training runs), converted/NAME.
internal sealed record ExperimentPlan
{
    public required string Shape { get; init; }
    /// The teacher's recipe; its Steps is the pretraining length alpha refers to.
    public required TrainingOptions Pretraining { get; init; }
    /// Peak learning rate of uptraining (warm-up, then cosine to the pretraining's final ratio).
    public double UptrainingLearningRate { get; init; } = 3e-4;
    public IReadOnlyList<int> Groups { get; init; } = [4, 2, 1];
    public IReadOnlyList<string> Methods { get; init; } = ["mean-pool", "first-head", "random"];
    public double MainAlpha { get; init; } = 0.05;
    public IReadOnlyList<double> SweepAlphas { get; init; } = [0.025, 0.10];
    public int SweepGroups { get; init; } = 2;

    public int NumHeads => 8;
    public Variant Teacher => new("mha", NumHeads, "mha", null);

    /// Every variant in the order the runner makes them: teacher, conversions (alpha 0), uptraining at the main
    /// alpha, the sweep, the model from scratch. The most informative results come first, should time run out.
    public IReadOnlyList<Variant> Variants()
    {
        var conversions = Groups.SelectMany(g => Methods.Select(m => new Variant(Name(g, m, 0), g, m, 0))).ToList();
        var main = conversions.Select(c => c with { Name = Name(c.NumKVHeads, c.Method, MainAlpha), Alpha = MainAlpha });
        var sweep = SweepAlphas.Select(a => new Variant(Name(SweepGroups, "mean-pool", a), SweepGroups, "mean-pool", a));
        return [Teacher, .. conversions, .. main, .. sweep, new Variant($"gqa{SweepGroups}-scratch", SweepGroups, "scratch", null)];
    }

    public static string Name(int groups, string method, double alpha) =>
        string.Create(CultureInfo.InvariantCulture, $"{(groups == 1 ? "mqa" : $"gqa{groups}")}-{method}-a{alpha * 100:0.#}");

    /// Uptraining's recipe for alpha: alpha x the pretraining steps, a tenth of them warm-up, a new batch order.
    public TrainingOptions Uptraining(double alpha)
    {
        var steps = Commands.TrainCommand.UptrainingSteps(alpha, Pretraining.Steps);
        return Pretraining with
        {
            Steps = steps,
            LearningRate = UptrainingLearningRate,
            WarmupSteps = Math.Max(1, steps / 10),
            Seed = Pretraining.Seed + 1,
            EvalEvery = 0,
            SaveEvery = 0,
        };
    }

    /// The baseline from scratch: the pretraining recipe for the teacher's steps plus the main alpha's.
    public TrainingOptions Scratch() => Pretraining with
    {
        Steps = Pretraining.Steps + Commands.TrainCommand.UptrainingSteps(MainAlpha, Pretraining.Steps),
        WarmupSteps = Pretraining.WarmupSteps,
        EvalEvery = Pretraining.EvalEvery,
    };

    public static KVHeadInit Init(string method) => Commands.ConvertCommand.InitNames[method];

    /// Optimizer steps of the whole plan (teacher, every uptraining, the model from scratch).
    public int TotalSteps() =>
        Pretraining.Steps + Variants().Where(v => v.IsConversion && v.Alpha > 0).Sum(v => Uptraining(v.Alpha!.Value).Steps) + Scratch().Steps;
}
