using System.CommandLine;
using Serving.LoadGen.Clients;
using Serving.LoadGen.Datasets;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// `generate`: streams one completion of a prompt to the terminal, over the OpenAI HTTP API or gRPC.
internal static class GenerateCommand
{
    public static Command Create()
    {
        var command = new Command("generate", "Stream one completion to the terminal (try the server without writing code).");
        var prompt = new Argument<string>("prompt") { Description = "Prompt text (with --chat: the user message)." };
        var backend = new Option<string>("--backend") { Description = "openai or grpc.", DefaultValueFactory = _ => "openai" };
        var url = new Option<string?>("--url") { Description = "Server address (default http://localhost:8000; gRPC http://localhost:50051)." };
        var model = new Option<string?>("--model") { Description = "Served model name (default: the server's first model)." };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer key." };
        var chat = new Option<bool>("--chat") { Description = "Send the prompt as a user chat message (the model's chat template applies)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (0: greedy).", DefaultValueFactory = _ => 0.0 };
        backend.AcceptOnlyFromAmong("openai", "grpc");
        command.Arguments.Add(prompt);
        foreach (var option in new Option[] { backend, url, model, apiKey, chat, maxTokens, temperature }) command.Options.Add(option);
        command.SetAction((parse, ct) =>
        {
            var isGrpc = parse.GetValue(backend) == "grpc";
            var address = new Uri(parse.GetValue(url) ?? (isGrpc ? "http://localhost:50051" : "http://localhost:8000"));
            var kind = (isGrpc ? "grpc" : "openai") + (parse.GetValue(chat) ? "-chat" : "");
            return RunAsync(new Endpoint(kind, address, parse.GetValue(model), parse.GetValue(apiKey)), parse.GetValue(prompt)!,
                parse.GetValue(maxTokens), parse.GetValue(temperature), parse.InvocationConfiguration.Output, ct);
        });
        return command;
    }

    /// Writes the text deltas to output as they arrive (the console, unless the invocation redirects it), then a
    /// summary line (lengths, TTFT, decode rate) to the terminal.
    public static async Task<int> RunAsync(Endpoint endpoint, string prompt, int maxTokens, double temperature, TextWriter output,
        CancellationToken cancellationToken)
    {
        await using var backend = EndpointOptions.Connect(endpoint);
        var server = await backend.GetServerInfoAsync(endpoint.Model, cancellationToken);
        var request = new BenchRequest(0, BenchPrompt.OfText(prompt), 0, maxTokens);
        var settings = new GenerationSettings(server.ModelId, IgnoreEos: false, temperature) { OnText = output.Write };
        var outcome = await backend.SendAsync(request, settings, cancellationToken);
        output.WriteLine();
        if (!outcome.Success)
        {
            AnsiConsole.MarkupLine($"[red]failed:[/] {Markup.Escape(outcome.Error ?? "")}");
            return 1;
        }
        var rate = outcome.OutputTokens > 1 ? (outcome.OutputTokens - 1) / (outcome.Latency - outcome.Ttft) : 0;
        AnsiConsole.MarkupLine($"[grey]{outcome.PromptLength} prompt tokens, {outcome.OutputTokens} generated; " +
            $"TTFT {outcome.Ttft * 1000:0.0} ms, {rate:0.0} tokens/s after the first[/]");
        return 0;
    }
}
