using System.CommandLine;
using Serving.Engine;
using Serving.Engine.Sampling;

namespace Serving.Training.Commands;

/// `sample`: a greedy continuation of a prompt through the serving engine itself (LlmEngine), to read what a
/// checkpoint writes.
internal static class SampleCommand
{
    public static Command Create()
    {
        var command = new Command("sample", "Greedy continuation of a prompt by a checkpoint, through the serving engine.");
        var model = new Option<string>("--model") { Description = "Checkpoint folder (with its tokenizer).", Required = true };
        var prompt = new Option<string>("--prompt") { DefaultValueFactory = _ => "The Debian" };
        var maxTokens = new Option<int>("--max-tokens") { DefaultValueFactory = _ => 64 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        foreach (var option in new Option[] { model, prompt, maxTokens, device }) command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            Console.WriteLine(await Continue(parse.GetValue(model)!, parse.GetValue(prompt)!, parse.GetValue(maxTokens), parse.GetValue(device)!, cancel));
            return 0;
        });
        return command;
    }

    /// The prompt followed by up to maxTokens greedy tokens (stopping at end-of-text).
    public static async Task<string> Continue(string model, string prompt, int maxTokens, string device, CancellationToken cancel)
    {
        await using var engine = new LlmEngine(new EngineOptions { Model = model, Device = device, KVCacheMemoryBytes = device == "cpu" ? 64 << 20 : null });
        await engine.WaitUntilReadyAsync(cancel);
        var request = new GenerationRequest
        {
            RequestId = "sample", PromptTokenIds = engine.Prompts.Encode(prompt),
            Sampling = SamplingParams.Greedy with { MaxTokens = maxTokens },
        };
        var text = new System.Text.StringBuilder(prompt);
        await foreach (var e in engine.GenerateAsync(request, cancel)) text.Append(e.TextDelta);
        return text.ToString();
    }
}
