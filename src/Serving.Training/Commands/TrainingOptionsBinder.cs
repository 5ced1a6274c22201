using System.CommandLine;
using Serving.Engine.Model;
using Serving.Training.Training;
using static TorchSharp.torch;

namespace Serving.Training.Commands;

/// The options `train` and `uptrain` share (the recipe, the device, the time limit), declared once.
internal sealed class TrainingOptionsBinder
{
    readonly Option<string> _data = new("--data") { Description = "Prepared corpus folder (train/heldout token files, tokenizer/).", Required = true };
    readonly Option<string> _output = new("--output") { Description = "Run folder: checkpoint/, metrics.jsonl, eval.jsonl, loss.png.", Required = true };
    readonly Option<int> _batch = new("--batch-size") { Description = "Sequences per step.", DefaultValueFactory = _ => 32 };
    readonly Option<int> _seqLen = new("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 512 };
    readonly Option<double> _lr = new("--lr") { Description = "Peak learning rate (warm-up, then cosine decay).", DefaultValueFactory = _ => 1e-3 };
    readonly Option<int?> _warmup = new("--warmup-steps") { Description = "Warm-up steps (default 5% of the steps)." };
    readonly Option<double> _minLr = new("--min-lr-ratio") { Description = "Final learning rate as a fraction of the peak.", DefaultValueFactory = _ => 0.1 };
    readonly Option<double> _weightDecay = new("--weight-decay") { DefaultValueFactory = _ => 0.1 };
    readonly Option<double> _clip = new("--clip") { Description = "Global gradient norm limit.", DefaultValueFactory = _ => 1.0 };
    readonly Option<long> _seed = new("--seed") { Description = "Seed of the initialisation and the batch order.", DefaultValueFactory = _ => 0 };
    readonly Option<int> _logEvery = new("--log-every") { DefaultValueFactory = _ => 10 };
    readonly Option<int> _evalEvery = new("--eval-every") { Description = "Steps between held-out evaluations (0: at the end).", DefaultValueFactory = _ => 0 };
    readonly Option<int> _evalWindows = new("--eval-windows") { Description = "Held-out windows per evaluation.", DefaultValueFactory = _ => 128 };
    readonly Option<int> _saveEvery = new("--save-every") { Description = "Steps between checkpoints (0: at the end and at the time limit).", DefaultValueFactory = _ => 0 };
    readonly Option<string> _device = new("--device") { Description = "cpu or cuda[:N].", DefaultValueFactory = _ => "cpu" };
    readonly Option<string> _dtype = new("--dtype") { Description = "Compute dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16.", DefaultValueFactory = _ => "auto" };
    readonly Option<double?> _maxSeconds = new("--max-seconds") { Description = "Save and stop after this many seconds; the same command resumes." };
    readonly Option<bool> _noCharts = new("--no-charts") { Description = "Do not draw loss.png (draw it later with `report`)." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _data, _output, _batch, _seqLen, _lr, _warmup, _minLr, _weightDecay, _clip, _seed,
            _logEvery, _evalEvery, _evalWindows, _saveEvery, _device, _dtype, _maxSeconds, _noCharts })
            command.Options.Add(option);
    }

    public string Data(ParseResult parse) => parse.GetValue(_data)!;

    public TrainingOptions Options(ParseResult parse, int steps) => new TrainingOptions
    {
        Steps = steps,
        BatchSize = parse.GetValue(_batch),
        SequenceLength = parse.GetValue(_seqLen),
        LearningRate = parse.GetValue(_lr),
        WarmupSteps = parse.GetValue(_warmup) ?? Math.Max(1, steps / 20),
        MinLearningRateRatio = parse.GetValue(_minLr),
        WeightDecay = parse.GetValue(_weightDecay),
        GradientClip = parse.GetValue(_clip),
        Seed = parse.GetValue(_seed),
        LogEvery = parse.GetValue(_logEvery),
        EvalEvery = parse.GetValue(_evalEvery),
        EvalWindows = parse.GetValue(_evalWindows),
        SaveEvery = parse.GetValue(_saveEvery),
    }.Validated();

    public TrainingRun Run(ParseResult parse, TrainingOptions options)
    {
        var device = TorchSharp.torch.device(parse.GetValue(_device)!);
        return new TrainingRun
        {
            OutputDir = parse.GetValue(_output)!,
            Options = options,
            Device = device,
            Dtype = ComputeDtype(parse.GetValue(_dtype)!, device),
            MaxSeconds = parse.GetValue(_maxSeconds),
            Charts = !parse.GetValue(_noCharts),
        };
    }

    /// auto: bfloat16 on CUDA (where it pays), float32 elsewhere.
    public static ScalarType ComputeDtype(string name, Device device) =>
        name == "auto" ? (device.type == TorchSharp.DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32) : ModelDtype.Parse(name);
}
