using System.CommandLine;
using Serving.Training.Corpus;
using Serving.Training.Training;

namespace Serving.Training.Commands;

/// `eval`: held-out perplexity of checkpoints through the training forward (the serving decoder, dense backend).
internal static class EvalCommand
{
    public static Command Create()
    {
        var command = new Command("eval", "Held-out perplexity of one or more checkpoints on a prepared corpus.");
        var models = new Option<string[]>("--model") { Description = "Checkpoint folders.", Required = true, AllowMultipleArgumentsPerToken = true };
        var data = new Option<string>("--data") { Description = "Corpus folder.", Required = true };
        var seqLen = new Option<int>("--seq-len") { DefaultValueFactory = _ => 512 };
        var windows = new Option<int>("--eval-windows") { DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 32 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { DefaultValueFactory = _ => "auto" };
        foreach (var option in new Option[] { models, data, seqLen, windows, batch, device, dtype }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var dev = TorchSharp.torch.device(parse.GetValue(device)!);
            using var heldOut = new TokenWindows(new TokenizedCorpus(parse.GetValue(data)!).ReadHeldOut(), dev);
            foreach (var dir in parse.GetValue(models)!)
            {
                using var model = TrainingModel.Load(dir, TrainingOptionsBinder.ComputeDtype(parse.GetValue(dtype)!, dev), dev, parse.GetValue(seqLen));
                var point = HeldOutEvaluation.Run(model, heldOut, 0, parse.GetValue(batch), parse.GetValue(seqLen), parse.GetValue(windows));
                Console.WriteLine($"{dir}: held-out loss {point.Loss:F4}, perplexity {point.Perplexity:F2} ({point.Tokens} tokens)");
            }
            return 0;
        });
        return command;
    }
}
