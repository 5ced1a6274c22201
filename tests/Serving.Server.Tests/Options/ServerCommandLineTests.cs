using Microsoft.Extensions.Configuration;
using Serving.Server.Options;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Options;

public sealed class ServerCommandLineTests
{
    /// The options a server would bind from these flags, over the given earlier sources (appsettings, environment).
    internal static ServerOptions Bind(IReadOnlyDictionary<string, string?> flags, Dictionary<string, string?>? before = null) =>
        new ConfigurationBuilder().AddInMemoryCollection(before ?? []).AddInMemoryCollection(flags).Build()
            .GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();

    [Fact]
    public void FlagsMapOntoTheConfigurationKeysAndBind()
    {
        var options = Bind(ServerCommandLine.ToConfiguration([
            "--host", "127.0.0.1", "--port", "9001", "--model", "/m", "--served-model-name", "tiny",
            "--max-model-len", "128", "--max-num-seqs", "4", "--block-size", "8", "--gpu-memory-utilization", "0.5",
            "--kv-cache-memory", "1048576", "--num-gpu-blocks-override", "32", "--no-enable-prefix-caching",
            "--api-key", "k", "--max-num-queued-reqs", "3", "--shutdown-timeout", "7", "--max-logprobs", "5",
            "--enable-log-requests", "--dtype", "float32", "--device", "cpu", "--max-num-batched-tokens", "512", "--seed", "42",
            "--disable-playground", "--tensor-parallel-size", "4", "--hf-overrides", """{"max_position_embeddings": 8192}""",
        ]));
        Assert.Equal(("127.0.0.1", 9001, "/m", "tiny"), (options.Host, options.Port, options.Model, options.ServedModelName));
        Assert.Equal((128, 4, 8, 0.5), (options.MaxModelLen, options.MaxNumSeqs, options.BlockSize, options.GpuMemoryUtilization));
        Assert.Equal((1048576L, 32, false), (options.KvCacheMemory, options.NumGpuBlocksOverride, options.EnablePrefixCaching));
        Assert.Equal(("k", 3, 7, 5, true), (options.ApiKey, options.MaxNumQueuedReqs, options.ShutdownTimeout, options.MaxLogprobs, options.EnableLogRequests));
        Assert.True(options.DisablePlayground);
        var engine = options.ToEngineOptions();
        Assert.Equal(("/m", "float32", 512, 42L, 1048576L), (engine.Model, engine.Dtype, engine.MaxNumBatchedTokens, engine.Seed, engine.KVCacheMemoryBytes));
        Assert.Equal((32, false, 3), (engine.NumGpuBlocksOverride, engine.EnablePrefixCaching, engine.MaxNumQueuedRequests));
        Assert.Equal(4, engine.TensorParallelSize);
        Assert.Equal("""{"max_position_embeddings":8192}""", engine.HfOverrides?.ToString());
        Assert.Contains("hf-overrides must be a JSON object of config.json fields (got [1])",
            Bind(ServerCommandLine.ToConfiguration(["--hf-overrides", "[1]"])).Validate());
        Assert.Contains(Bind(ServerCommandLine.ToConfiguration(["--hf-overrides", "{"])).Validate(),
            e => e.StartsWith("hf-overrides is not valid JSON", StringComparison.Ordinal));
        Assert.Equal(["a", "b"], Bind(ServerCommandLine.ToConfiguration(["--served-model-name", "a", "b"])).ServedModelNames);
        Assert.Equal(["a", "b"], Bind(new Dictionary<string, string?>(), new() { ["Server:ServedModelName"] = "a b" }).ServedModelNames);   // Server__ServedModelName="a b"
        Assert.Equal(2, Bind(ServerCommandLine.ToConfiguration(["-tp", "2"])).ToEngineOptions().TensorParallelSize);
        Assert.Contains("tensor-parallel-size must be >= 1 (got 0)", Bind(ServerCommandLine.ToConfiguration(["-tp", "0"])).Validate());
        Assert.Equal(2048, Bind(ServerCommandLine.ToConfiguration(["--long-prefill-token-threshold", "2048"])).ToEngineOptions().LongPrefillTokenThreshold);
        Assert.Contains("long-prefill-token-threshold must be >= 0 (got -1)", Bind(ServerCommandLine.ToConfiguration(["--long-prefill-token-threshold", "-1"])).Validate());
    }

    /// vLLM's human-readable integers on the token counts and the KV bytes: decimal k m g t, binary K M G T.
    [Theory]
    [InlineData("32K", 32768)]
    [InlineData("1k", 1000)]
    [InlineData("25.6k", 25600)]
    [InlineData("128", 128)]
    [InlineData("1m", 1000000)]
    [InlineData("1.2345k", 1234)]
    public void TokenCountsTakeVllmsSuffixes(string text, int expected)
    {
        var options = Bind(ServerCommandLine.ToConfiguration(["--max-model-len", text, "--max-num-batched-tokens", text]));
        Assert.Equal((expected, expected), (options.MaxModelLen, options.ToEngineOptions().MaxNumBatchedTokens));
    }

    [Fact]
    public void MaxModelLenTakesAutoAsVllmSpellsIt()
    {
        foreach (var auto in new[] { "auto", "-1", "AUTO", " auto " })
            Assert.Equal(Serving.Engine.EngineOptions.AutoMaxModelLen, Bind(ServerCommandLine.ToConfiguration(["--max-model-len", auto])).ToEngineOptions().MaxModelLen);
        Assert.Empty(Bind(ServerCommandLine.ToConfiguration(["--max-model-len", "auto"])).Validate());
        Assert.Contains("max-model-len must be >= 0, or auto (-1) (got -2)", Bind(ServerCommandLine.ToConfiguration(["--max-model-len", "-2"])).Validate());
    }

    [Theory]
    [InlineData("--max-model-len", "1.5K")]
    [InlineData("--max-model-len", "3G")]
    [InlineData("--max-model-len", ".5k")]
    [InlineData("--max-num-batched-tokens", "lots")]
    [InlineData("--kv-cache-memory-bytes", "8Q")]
    public void ACountThatIsNotAWholeNumberIsRefusedNamingTheFlag(string flag, string text)
    {
        var refused = Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration([flag, text]));
        Assert.Contains($"{flag} {text} is not a whole number", refused.Message);
    }

    /// vLLM's --kv-cache-memory-bytes (our earlier --kv-cache-memory is its alias): left out, the CPU pool is 256 MiB and
    /// the CUDA pool what --gpu-memory-utilization leaves; given, the engine's pool has that size.
    [Fact]
    public void KvCacheMemoryBytesSizesThePool()
    {
        Assert.Equal(8L << 30, Bind(ServerCommandLine.ToConfiguration(["--kv-cache-memory-bytes", "8G"])).ToEngineOptions().KVCacheMemoryBytes);
        Assert.Equal(1L << 20, Bind(ServerCommandLine.ToConfiguration(["--kv-cache-memory", "1048576"])).ToEngineOptions().KVCacheMemoryBytes);
        Assert.Null(Bind(ServerCommandLine.ToConfiguration([])).ToEngineOptions().KVCacheMemoryBytes);
        Assert.Contains("kv-cache-memory-bytes must be > 0 (got 0)", Bind(ServerCommandLine.ToConfiguration(["--kv-cache-memory-bytes", "0"])).Validate());
    }

    [Fact]
    public void QuantizationNamesAMethodTheEngineChecksAgainstTheCheckpoint()
    {
        Assert.Equal("awq_marlin", Bind(ServerCommandLine.ToConfiguration(["-q", "awq_marlin"])).ToEngineOptions().Quantization);
        Assert.Null(Bind(ServerCommandLine.ToConfiguration([])).ToEngineOptions().Quantization);
        Assert.Contains(Bind(ServerCommandLine.ToConfiguration(["--quantization", "bitsandbytes"])).Validate(),
            e => e.StartsWith("quantization bitsandbytes is not served (accepted: fp8, compressed-tensors, awq", StringComparison.Ordinal));
    }

    [Fact]
    public void AbsentFlagsLeaveAppsettingsAndEnvironmentValuesAlone()
    {
        var earlier = new Dictionary<string, string?> { ["Server:Port"] = "7000", ["Server:MaxNumSeqs"] = "9" };
        var options = Bind(ServerCommandLine.ToConfiguration(["--max-num-seqs", "2"]), earlier);
        Assert.Equal(7000, options.Port);
        Assert.Equal(2, options.MaxNumSeqs);
    }

    [Fact]
    public void DefaultsFollowVllmAndServeTheEmbeddedModel()
    {
        var options = Bind(ServerCommandLine.ToConfiguration([]));
        Assert.Equal((8000, 256, 16, true, 1024), (options.Port, options.MaxNumSeqs, options.BlockSize, options.EnablePrefixCaching, options.MaxNumQueuedReqs));
        Assert.Equal("default", options.ResolvedServedModelName);
        Assert.True(File.Exists(Path.Combine(options.ResolvedModel, "config.json")), options.ResolvedModel);
        Assert.NotEmpty(Directory.GetFiles(options.ResolvedModel, "*.safetensors"));
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void ServedNameDefaultsToTheModelString()
    {
        Assert.Equal("/models/x", Bind(ServerCommandLine.ToConfiguration(["--model", "/models/x"])).ResolvedServedModelName);
    }

    [Fact]
    public void BadFlagsAreArgumentErrors()
    {
        Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(["--port", "eighty"]));
        Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(["--no-such-flag"]));
    }

    [Fact]
    public void ValidationListsEveryBadValue()
    {
        var options = new ServerOptions { Port = 70000, Host = "not-an-ip", MaxNumSeqs = 0, GpuMemoryUtilization = 2, MaxLogprobs = 50, ApiKey = "" };
        var errors = options.Validate();
        Assert.Equal(6, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("port", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("api-key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task HelpDocumentsEveryFlag()
    {
        var output = new StringWriter();
        var command = ServerCommandLine.Create((_, _) => Task.FromResult(0));
        var exit = await command.Parse(["--help"]).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output });
        Assert.Equal(0, exit);
        foreach (var flag in new[] { "--host", "--port", "--model", "--served-model-name", "--dtype", "--device", "--max-model-len",
                     "--max-num-seqs", "--max-num-batched-tokens", "--block-size", "--gpu-memory-utilization", "--kv-cache-memory-bytes", "--kv-cache-dtype",
                     "--num-gpu-blocks-override", "--enable-prefix-caching", "--no-enable-prefix-caching", "--api-key",
                     "--max-num-queued-reqs", "--shutdown-timeout", "--max-logprobs", "--enable-log-requests",
                     "--long-prefill-token-threshold", "--speculative-config", "--runner", "--convert", "--pooler-config" })
            Assert.Contains(flag, output.ToString());
    }

    /// A `vllm serve` command line runs as it is: the model first, vLLM's flags that ask for what this server always
    /// does accepted and listed with why for the start-up warning, the HTTP server's log level onto ASP.NET Core's.
    [Fact]
    public void AVllmServeCommandLineRunsAsItIs()
    {
        var flags = ServerCommandLine.ToConfiguration(["/models/qwen3", "--trust-remote-code", "--enable-chunked-prefill",
            "--swap-space", "4", "--max-model-len", "8192", "-pp", "1", "--data-parallel-size", "1", "--tokenizer-mode", "auto",
            "--load-format", "safetensors", "--uvicorn-log-level", "info", "--disable-log-requests", "--limit-mm-per-prompt", """{"image": 0}"""]);
        var options = Bind(flags);
        Assert.Equal(("/models/qwen3", 8192), (options.Model, options.MaxModelLen));
        Assert.Equal("Information", flags["Logging:LogLevel:Microsoft.AspNetCore"]);
        var withoutEffect = options.FlagsWithoutEffect!.Split('\n');
        Assert.Equal(["--trust-remote-code", "--enable-chunked-prefill", "--disable-log-requests", "--limit-mm-per-prompt", "--swap-space"],
            withoutEffect.Select(f => f.Split(' ')[0]));
        Assert.Contains("--trust-remote-code (every architecture is built in; no code from a checkpoint runs)", withoutEffect);
        Assert.Null(Bind(ServerCommandLine.ToConfiguration(["--model", "/m"])).FlagsWithoutEffect);
        // as vLLM recipes write them: torch.compile's level and config, async scheduling, expert parallelism
        var recipe = Bind(ServerCommandLine.ToConfiguration(["/m", "--async-scheduling", "-O3", "-ep", "--chat-template-content-format", "string"]))
            .FlagsWithoutEffect!.Split('\n');
        Assert.Equal(["--compilation-config", "--async-scheduling", "--enable-expert-parallel"], recipe.Select(f => f.Split(' ')[0]));
        // and as older command lines write them
        var older = Bind(ServerCommandLine.ToConfiguration(["/m", "--enable-reasoning", "--reasoning-parser", "deepseek_r1",
            "--guided-decoding-backend", "xgrammar", "--enable-log-requests", "--enable-log-outputs"])).FlagsWithoutEffect!.Split('\n');
        Assert.Equal(["--enable-reasoning", "--enable-log-outputs", "--guided-decoding-backend"], older.Select(f => f.Split(' ')[0]));
        Assert.StartsWith("--compilation-config (nothing is compiled by torch.compile", Bind(ServerCommandLine.ToConfiguration(
            ["--compilation-config", """{"cudagraph_mode": "FULL_AND_PIECEWISE"}"""])).FlagsWithoutEffect);
        Assert.Equal("/m", Bind(ServerCommandLine.ToConfiguration(["/m", "--model", "/m"])).Model);
    }

    /// The values of vLLM's flags that ask for what is not built are refused naming the flag, as is a model named
    /// twice, a log level Python would not know, and a flag vLLM does not have either.
    [Theory]
    [InlineData("-pp 2", "--pipeline-parallel-size 2 is not served: pipeline parallelism is not built")]
    [InlineData("--data-parallel-size 4", "--data-parallel-size 4 is not served: one server serves one model replica")]
    [InlineData("--tokenizer-mode mistral", "--tokenizer-mode mistral is not served: the checkpoint's tokenizer.json")]
    [InlineData("--load-format gguf", "--load-format gguf is not served: checkpoints are read from safetensors files (accepted: auto, safetensors)")]
    [InlineData("/a --model /b", "the model is named twice, first as '/a' and by --model as '/b'")]
    [InlineData("--uvicorn-log-level loud", "loud")]
    [InlineData("--no-such-flag", "unknown flag --no-such-flag")]
    public void WhatIsNotBuiltIsRefusedNamingTheFlag(string args, string message)
    {
        var refused = Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(args.Split(' ')));
        Assert.Contains(message, refused.Message);
    }

    /// The server process started by such a command line serves, and says at start which flags changed nothing.
    [Fact]
    public async Task TheServerStartedByAVllmCommandLineServesAndNamesTheFlagsWithoutEffect()
    {
        await using var server = ServerProcess.Start([Fixtures.Dir("llama-gqa"), "--trust-remote-code", "--enable-chunked-prefill",
            "--swap-space", "4", "--uvicorn-log-level", "warning"]);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = server.BaseAddress };
        using var answer = await client.PostAsync("/v1/completions", new StringContent(
            """{"prompt": "Hello", "max_tokens": 4}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
        Assert.Contains("vLLM flags accepted with no effect here: --trust-remote-code (every architecture is built in", server.Output);
        Assert.Contains("--swap-space (a preempted sequence is recomputed", server.Output);
    }
}
