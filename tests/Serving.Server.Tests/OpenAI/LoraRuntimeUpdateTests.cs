using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --allow-runtime-lora-updating: vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter on the real server. An
/// adapter loaded while serving answers as the same folder loaded at start does; one in use is not unloaded.
public sealed class LoraRuntimeUpdateTests : IAsyncLifetime
{
    LoraFixture _lora = null!;
    RunningServer _server = null!;

    public async Task InitializeAsync()
    {
        _lora = LoraFixture.Create("llama-gqa", seed: 7);
        _server = await RunningServer.StartAsync(["--enable-lora", "--lora-modules", $"at-start={_lora.Adapter.Path}", "--allow-runtime-lora-updating",
            "--max-loras", "2"]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _lora.Dispose();
    }

    async Task<(int Status, string Body)> Post(string path, object body)
    {
        using var response = await _server.Http.PostAsync(path, RunningServer.Json(body));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    async Task<string> Answer(string model)
    {
        var (status, body) = await _server.PostAsync("/v1/completions",
            new { model, prompt = "Hello world", max_tokens = 8, temperature = 0, ignore_eos = true });
        Assert.Equal(200, status);
        return body!["choices"]![0]!["text"]!.GetValue<string>();
    }

    [Fact]
    public async Task AnAdapterLoadsAnswersAndUnloadsWhileServing()
    {
        var (status, text) = await Post("/v1/load_lora_adapter", new { lora_name = "later", lora_path = _lora.Adapter.Path });
        Assert.Equal((200, "Success: LoRA adapter 'later' added successfully."), (status, text));
        var models = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Contains("later", models.Select(m => m!["id"]!.GetValue<string>()));
        Assert.Equal(await Answer("at-start"), await Answer("later"));

        // in use: refused; once the request is gone, unloaded
        var (stream, events) = await _server.StreamAsync("/v1/completions",
            new { model = "later", prompt = "Hello", max_tokens = 200, ignore_eos = true, stream = true });
        Assert.NotNull(await events.NextAsync());
        var (busy, busyBody) = await Post("/v1/unload_lora_adapter", new { lora_name = "later" });
        Assert.Equal(400, busy);
        Assert.Contains("is in use by 1 request", busyBody);
        stream.Dispose();
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0);
        Assert.Equal((200, "Success: LoRA adapter 'later' removed successfully."), await Post("/v1/unload_lora_adapter", new { lora_name = "later" }));
        var (gone, _) = await _server.PostAsync("/v1/completions", new { model = "later", prompt = "Hi", max_tokens = 1 });
        Assert.Equal(404, gone);
        Assert.Equal(404, (await Post("/v1/unload_lora_adapter", new { lora_name = "later" })).Status);
        Assert.NotEmpty(await Answer("at-start"));   // the other adapter is untouched
    }

    [Fact]
    public async Task AnAdapterLoadedAgainUnderItsNameFindsNoneOfTheOldLoadsBlocks()
    {
        using var other = LoraFixture.Create("llama-gqa", seed: 8);
        var prompt = string.Join(" ", Enumerable.Repeat("an adapter reloaded under its name starts cold", 5));
        async Task<int> CachedTokens()
        {
            var (status, body) = await _server.PostAsync("/v1/completions", new { model = "swap", prompt, max_tokens = 1 });
            Assert.Equal(200, status);
            return body!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        }
        Assert.Equal(200, (await Post("/v1/load_lora_adapter", new { lora_name = "swap", lora_path = _lora.Adapter.Path })).Status);
        await CachedTokens();
        Assert.True(await CachedTokens() > 0, "the first load's blocks serve its own repeat");
        Assert.Equal(200, (await Post("/v1/unload_lora_adapter", new { lora_name = "swap" })).Status);
        Assert.Equal(200, (await Post("/v1/load_lora_adapter", new { lora_name = "swap", lora_path = other.Adapter.Path })).Status);
        Assert.Equal(0, await CachedTokens());
    }

    [Fact]
    public async Task BadLoadsAre400sNamingTheField()
    {
        using var broken = new TempDirectory();
        File.WriteAllText(broken.File("adapter_config.json"), """{"r": 4, "use_dora": true}""");
        foreach (var (body, param, message) in new (object, string, string)[]
        {
            (new { lora_name = "at-start", lora_path = _lora.Adapter.Path }, "lora_name", "has already been loaded"),
            (new { lora_name = RunningServer.Model, lora_path = _lora.Adapter.Path }, "lora_name", "is the served model's name"),
            (new { lora_name = "x", lora_path = "/no/such/folder" }, "lora_path", "does not exist"),
            (new { lora_name = "x", lora_path = broken.Path }, "lora_path", "DoRA adapters (use_dora) are not supported"),
            (new { lora_path = _lora.Adapter.Path }, "lora_name", "lora_name must name the adapter"),
        })
        {
            var (status, text) = await Post("/v1/load_lora_adapter", body);
            Assert.Equal(400, status);
            var error = JsonNode.Parse(text)!["error"]!;
            Assert.Equal(param, error["param"]!.GetValue<string>());
            Assert.Contains(message, error["message"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task AtMostMaxLorasAreLoadedAtOnce()
    {
        Assert.Equal(200, (await Post("/v1/load_lora_adapter", new { lora_name = "second", lora_path = _lora.Adapter.Path })).Status);
        var (status, text) = await Post("/v1/load_lora_adapter", new { lora_name = "third", lora_path = _lora.Adapter.Path });
        Assert.Equal(400, status);
        Assert.Contains("2 LoRA adapters are loaded, the most at once (--max-loras)", text);
        Assert.Equal(200, (await Post("/v1/unload_lora_adapter", new { lora_name = "second" })).Status);
        Assert.Equal(200, (await Post("/v1/load_lora_adapter", new { lora_name = "third", lora_path = _lora.Adapter.Path })).Status);
    }

    [Fact]
    public async Task WithoutTheFlagTheRoutesDoNotExist()
    {
        await using var server = await RunningServer.StartAsync(["--enable-lora", "--lora-modules", $"a={_lora.Adapter.Path}"]);
        using var response = await server.Http.PostAsync("/v1/load_lora_adapter", RunningServer.Json(new { lora_name = "b", lora_path = _lora.Adapter.Path }));
        Assert.Equal(404, (int)response.StatusCode);
    }
}
