using System.Text.Json.Nodes;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --enable-lora --lora-modules through the real server: an adapter is a model clients name, listed with its parent,
/// answering as the checkpoint with the adapter merged into its weights (served beside it for the comparison), over
/// HTTP and gRPC, while the base model answers as before; the two never share prefix-cache blocks.
public sealed class LoraAdapterTests : IAsyncLifetime
{
    LoraFixture _lora = null!;
    RunningServer _server = null!;
    RunningServer _merged = null!;

    public async Task InitializeAsync()
    {
        _lora = LoraFixture.Create("llama-gqa");
        // the second adapter in vLLM's JSON form, naming the model its card lists as parent
        _server = await RunningServer.StartAsync(["--enable-lora", "--lora-modules", $"tuned={_lora.Adapter.Path}",
            $$"""{"name": "styled", "path": "{{_lora.Adapter.Path}}", "base_model_name": "llama-base"}"""]);
        _merged = await RunningServer.StartAsync(model: _lora.Merged.Path);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _merged.DisposeAsync();
        _lora.Dispose();
    }

    static object Chat(string model, string text = "Hello!") => new
    {
        model, messages = new[] { new { role = "user", content = text } }, max_tokens = 10, temperature = 0, ignore_eos = true,
    };

    static string Content(JsonNode body) => body["choices"]![0]!["message"]!["content"]!.GetValue<string>();

    [Fact]
    public async Task TheAdapterIsAModelThatAnswersAsItsMergedCheckpoint()
    {
        var models = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal([RunningServer.Model, "tuned", "styled"], models.Select(m => m!["id"]!.GetValue<string>()));
        Assert.Null(models[0]!["parent"]);
        Assert.Equal(RunningServer.Model, models[1]!["parent"]!.GetValue<string>());
        Assert.Equal("llama-base", models[2]!["parent"]!.GetValue<string>());
        Assert.Equal(_lora.Adapter.Path, models[1]!["root"]!.GetValue<string>());

        var (status, tuned) = await _server.PostAsync("/v1/chat/completions", Chat("tuned"));
        Assert.Equal(200, status);
        Assert.Equal("tuned", tuned!["model"]!.GetValue<string>());
        var (_, merged) = await _merged.PostAsync("/v1/chat/completions", Chat(RunningServer.Model));
        Assert.Equal(Content(merged!), Content(tuned));
        var (_, plain) = await _server.PostAsync("/v1/chat/completions", Chat(RunningServer.Model));
        Assert.NotEqual(Content(plain!), Content(tuned));
        Assert.Equal(RunningServer.Model, plain!["model"]!.GetValue<string>());

        // gRPC names the adapter the same way
        var request = GenerateResult.Greedy(10, text: "Hello world");
        request.Model = "tuned";
        var grpc = await GenerateResult.ReadAsync(_server.Grpc(), request);
        var (_, completion) = await _merged.PostAsync("/v1/completions",
            new { model = RunningServer.Model, prompt = "Hello world", max_tokens = 10, temperature = 0, ignore_eos = true });
        Assert.Equal(completion!["choices"]![0]!["text"]!.GetValue<string>(), grpc.Text());
        var listed = await _server.Grpc().ListModelsAsync(new ListModelsRequest());
        Assert.Equal(RunningServer.Model, listed.Models.Single(m => m.Id == "tuned").Parent);
        Assert.Equal("llama-base", listed.Models.Single(m => m.Id == "styled").Parent);
    }

    [Fact]
    public async Task TheAdapterAndTheBaseModelNeverShareCachedBlocks()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("the quick brown fox jumps over the lazy dog", 6));
        async Task<int> CachedTokens(string model)
        {
            var (status, body) = await _server.PostAsync("/v1/completions", new { model, prompt, max_tokens = 1 });
            Assert.Equal(200, status);
            return body!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        }
        await CachedTokens(RunningServer.Model);
        Assert.True(await CachedTokens(RunningServer.Model) > 0, "the base model's second request hits its blocks");
        Assert.Equal(0, await CachedTokens("tuned"));
        Assert.True(await CachedTokens("tuned") > 0, "the adapter's second request hits its own blocks");
    }

    [Fact]
    public async Task AModelThatIsNeitherIs404()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", Chat("tuned-2"));
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", body!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public void TheFlagsBindAndAreChecked()
    {
        static Serving.Server.Options.ServerOptions Bind(params string[] args) =>
            Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(args));
        var options = Bind("--enable-lora", "--lora-modules", "a=/x", "b=/y", "--max-lora-rank", "64");
        Assert.Equal([("a", "/x"), ("b", "/y")], options.ToEngineOptions().LoraModules.Select(m => (m.Name, m.Path)));
        Assert.Equal(64, options.ToEngineOptions().MaxLoraRank);
        Assert.Contains("lora-modules needs enable-lora", Bind("--lora-modules", $"a={_lora.Adapter.Path}").Validate());
        Assert.Contains("lora-modules entries are name=path or a JSON object (got 'a')", Bind("--enable-lora", "--lora-modules", "a").Validate());
        // vLLM's JSON form, whose values may hold spaces, beside name=path
        Assert.Equal([("j", "/a b", "base"), ("c", "/z", null)], Bind("--enable-lora", "--lora-modules",
            """{"name": "j", "path": "/a b", "base_model_name": "base"}""", "c=/z").ToEngineOptions().LoraModules.Select(m => (m.Name, m.Path, m.BaseModelName)));
        Assert.Contains("lora-modules: '{\"name\": \"j\"}' has no path", Bind("--enable-lora", "--lora-modules", """{"name": "j"}""").Validate());
        Assert.Contains(Bind("--enable-lora", "--lora-modules", """{"name": "j", """).Validate(), e => e.Contains("is not valid JSON"));
        Assert.Contains(Bind("--enable-lora", "--lora-modules", """{"name": "j", "path": 3}""").Validate(), e => e.Contains("path in '{\"name\": \"j\", \"path\": 3}' must be a non-empty string"));
        Assert.Contains(Bind("--enable-lora", "--lora-modules", "a=/no/such/folder").Validate(), e => e.Contains("adapter folder '/no/such/folder' of 'a' does not exist"));
        Assert.Contains(Bind("--enable-lora", "--served-model-name", "a", "--lora-modules", $"a={_lora.Adapter.Path}").Validate(),
            e => e.Contains("'a' is also a served model name"));
        Assert.Contains(Bind("--enable-lora", "--max-loras", "1", "--lora-modules", $"a={_lora.Adapter.Path}", $"b={_lora.Adapter.Path}").Validate(),
            e => e.Contains("2 adapters are given, max-loras is 1"));
        // room beyond the modules is kept only where adapters can come while serving: at least the modules, else vLLM's 1
        Assert.Equal((int?)2, Bind("--enable-lora", "--allow-runtime-lora-updating", "--lora-modules", "a=/x", "b=/y").ToEngineOptions().MaxLoras);
        Assert.Equal((int?)1, Bind("--enable-lora", "--allow-runtime-lora-updating").ToEngineOptions().MaxLoras);
        Assert.Null(Bind("--enable-lora", "--lora-modules", "a=/x").ToEngineOptions().MaxLoras);
        Assert.Null(Bind().ToEngineOptions().MaxLoras);
    }
}
