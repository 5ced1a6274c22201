using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Generation;

/// generation_config.json's sampling defaults apply to the fields a request leaves out, as in vLLM
/// (--generation-config auto, the default); "vllm" turns them off and a folder path takes another file.
public sealed class GenerationConfigTests : IDisposable
{
    readonly TempDirectory _model = new();
    readonly TempDirectory _other = new();

    public GenerationConfigTests()
    {
        foreach (var file in Directory.GetFiles(Fixtures.Dir("llama-gqa")))
            File.Copy(file, _model.File(Path.GetFileName(file)));
        // Greedy and three tokens unless the request says otherwise.
        var config = JsonNode.Parse(File.ReadAllText(_model.File("generation_config.json")))!.AsObject();
        config["temperature"] = 0.0;
        config["max_new_tokens"] = 3;
        config["do_sample"] = true;
        File.WriteAllText(_model.File("generation_config.json"), config.ToJsonString());
        File.WriteAllText(_other.File("generation_config.json"), """{"max_new_tokens": 5, "top_k": 1}""");
    }

    public void Dispose()
    {
        _model.Dispose();
        _other.Dispose();
    }

    static object Request(int? maxTokens = null, float? temperature = null) => new
    {
        model = RunningServer.Model, prompt = "Hello", ignore_eos = true, max_tokens = maxTokens, temperature,
    };

    [Fact]
    public async Task TheModelsDefaultsFillWhatTheRequestLeavesOut()
    {
        await using var server = await StartAsync();
        var first = await CompleteAsync(server, Request());
        Assert.Equal(3, first.Tokens);
        Assert.Equal(first.Text, (await CompleteAsync(server, Request())).Text); // greedy: the same text each time
        Assert.Equal(7, (await CompleteAsync(server, Request(maxTokens: 7))).Tokens); // the request wins
        var grpc = await GenerateResult.ReadAsync(server.Grpc(), new Serving.Grpc.V1.GenerateRequest
        {
            Text = "Hello", Sampling = new() { IgnoreEos = true },
        });
        Assert.Equal(3, grpc.TokenIds().Length);
        Assert.Equal(first.Text, grpc.Text());
    }

    [Fact]
    public async Task VllmTurnsTheDefaultsOffAndAFolderReplacesThem()
    {
        await using (var server = await StartAsync("vllm", "--max-model-len", "32"))
        {
            var (tokens, _) = await CompleteAsync(server, Request());
            var prompt = (await server.PostAsync("/tokenize", new { model = RunningServer.Model, prompt = "Hello" })).Body!["count"]!.GetValue<int>();
            Assert.Equal(32 - prompt, tokens); // all the room the prompt leaves
        }
        await using (var server = await StartAsync(_other.Path))
        {
            var first = await CompleteAsync(server, Request());
            Assert.Equal(5, first.Tokens);
            Assert.Equal(first.Text, (await CompleteAsync(server, Request())).Text); // top_k 1
        }
    }

    [Fact]
    public async Task OverridesReplaceTheDefaultsTheyName()
    {
        // over the model's file: max_new_tokens 3 becomes 4, temperature 0 stays
        await using (var server = await StartAsync(null, "--override-generation-config", """{"max_new_tokens": 4}"""))
        {
            var first = await CompleteAsync(server, Request());
            Assert.Equal(4, first.Tokens);
            Assert.Equal(first.Text, (await CompleteAsync(server, Request())).Text);
        }
        // over vllm's none: the override alone
        await using (var server = await StartAsync("vllm", "--override-generation-config", """{"max_new_tokens": 2}"""))
            Assert.Equal(2, (await CompleteAsync(server, Request())).Tokens);
    }

    [Fact]
    public void AnOverrideThatIsNotGenerationConfigIsAStartUpError()
    {
        IReadOnlyList<string> Errors(string json) => Options.ServerCommandLineTests.Bind(
            Serving.Server.Options.ServerCommandLine.ToConfiguration(["--override-generation-config", json])).Validate();
        Assert.Contains(Errors("""{"temprature": 0.5}"""), e => e.StartsWith("override-generation-config: 'temprature' is not one of temperature", StringComparison.Ordinal));
        Assert.Contains(Errors("""{"top_k": "many"}"""), e => e.Contains("override-generation-config", StringComparison.Ordinal) && e.Contains("top_k", StringComparison.Ordinal));
        Assert.Contains("override-generation-config must be a JSON object (got [1])", Errors("[1]"));
        Assert.Empty(Errors("""{"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0, "max_new_tokens": 512}"""));
    }

    Task<RunningServer> StartAsync(string? generationConfig = null, params string[] extra) =>
        RunningServer.StartAsync([.. generationConfig is null ? [] : new[] { "--generation-config", generationConfig }, .. extra], model: _model.Path);

    static async Task<(int Tokens, string Text)> CompleteAsync(RunningServer server, object body)
    {
        var (status, response) = await server.PostAsync("/v1/completions", body);
        Assert.True(status == 200, response?.ToJsonString());
        return (response!["usage"]!["completion_tokens"]!.GetValue<int>(), response["choices"]![0]!["text"]!.GetValue<string>());
    }
}
