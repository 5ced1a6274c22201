using Serving.Server.Options;
using Serving.Server.Tests.Support;
using static Serving.Server.Tests.Options.ServerCommandLineTests;

namespace Serving.Server.Tests.Options;

/// `vllm serve --config config.yaml`: a YAML file of long flag names, read as flags that the command line overrides.
public sealed class ConfigFileTests : IDisposable
{
    readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    string Write(string yaml)
    {
        var path = _dir.File($"config-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void TheFilesKeysAreFlagsAndTheirValuesBind()
    {
        var config = Write("""
            # as vLLM's docs write one
            model: /models/llama
            host: "127.0.0.1"
            port: 6379
            uvicorn-log-level: "info"
            served-model-name: [llama, chat]
            max_model_len: 8192
            gpu-memory-utilization: 0.85
            enable-prefix-caching: false
            enforce-eager: true
            hf-overrides: {max_position_embeddings: 8192, rope_scaling: {rope_type: yarn, factor: 4.0}}
            allowed-origins: ["https://a.example", "https://b.example"]
            default-chat-template-kwargs:
              enable_thinking: false
            trust-remote-code: true
            api-key:
            """);
        var flags = ServerCommandLine.ToConfiguration(["--config", config]);
        var options = Bind(flags);
        Assert.Equal(("/models/llama", "127.0.0.1", 6379, 8192, 0.85), (options.Model, options.Host, options.Port, options.MaxModelLen, options.GpuMemoryUtilization));
        Assert.Equal(["llama", "chat"], options.ServedModelNames);
        Assert.Equal((false, true), (options.EnablePrefixCaching, options.EnforceEager));
        Assert.Equal("Information", flags["Logging:LogLevel:Microsoft.AspNetCore"]);
        Assert.Equal("""{"max_position_embeddings":8192,"rope_scaling":{"rope_type":"yarn","factor":4}}""", options.ToEngineOptions().HfOverrides?.ToString());
        Assert.Equal("""["https://a.example","https://b.example"]""", options.AllowedOrigins);
        Assert.Equal("""{"enable_thinking":false}""", options.DefaultChatTemplateKwargs);
        Assert.StartsWith("--trust-remote-code", options.FlagsWithoutEffect);
        Assert.Null(options.ApiKey);   // an empty value sets nothing
    }

    /// command line > config file > appsettings and environment, as in vLLM; `vllm serve MODEL --config f` keeps MODEL.
    [Fact]
    public void TheCommandLineWinsOverTheFile()
    {
        var config = Write("""
            model: /from/file
            port: 6379
            max-num-seqs: 8
            enable-prefix-caching: true
            tensor-parallel-size: 2
            """);
        var options = Bind(ServerCommandLine.ToConfiguration(["/from/command/line", "--port", "9000", "--config", config,
            "--no-enable-prefix-caching", "-tp", "4"]));
        Assert.Equal(("/from/command/line", 9000, 8), (options.Model, options.Port, options.MaxNumSeqs));
        Assert.False(options.EnablePrefixCaching);
        Assert.Equal(4, options.ToEngineOptions().TensorParallelSize);
        Assert.Equal("/m", Bind(ServerCommandLine.ToConfiguration([$"--config={config}", "--model", "/m"])).Model);
        var earlier = new Dictionary<string, string?> { ["Server:Port"] = "7000", ["Server:MaxNumBatchedTokens"] = "1024" };
        var overEnvironment = Bind(ServerCommandLine.ToConfiguration(["--config", config]), earlier);
        Assert.Equal((6379, 1024), (overEnvironment.Port, overEnvironment.ToEngineOptions().MaxNumBatchedTokens));
    }

    [Fact]
    public void FlagsMayBeSpelledWithUnderscoresAsVllmReadsThem()
    {
        var options = Bind(ServerCommandLine.ToConfiguration(["--max_model_len", "128", "--served_model_name=tiny", "--enable_prefix_caching", "false"]));
        Assert.Equal((128, "tiny", false), (options.MaxModelLen, options.ServedModelName, options.EnablePrefixCaching));
    }

    [Theory]
    [InlineData("port: 8000\nno-such-flag: 1\n", "'no-such-flag' (line 2) is not a flag of this server")]
    [InlineData("--port: 8000\n", "'--port' (line 1) is not a flag of this server (keys are long flag names without the dashes")]
    [InlineData("config: other.yaml\n", "'config' (line 1) is not a flag of this server")]
    [InlineData("port: [8000\n", "not valid YAML")]
    [InlineData("- port\n- 8000\n", "must hold one mapping of flag names to values")]
    [InlineData("", "must hold one mapping of flag names to values")]
    [InlineData("port: eighty\n", "eighty")]
    [InlineData("pipeline-parallel-size: 2\n", "--pipeline-parallel-size 2 is not served: pipeline parallelism is not built")]
    public void AFileThatCannotServeIsRefusedNamingWhy(string yaml, string message)
    {
        var config = Write(yaml);
        var refused = Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(["--config", config]));
        Assert.Contains(message, refused.Message);
        if (message.Contains("not a flag", StringComparison.Ordinal) || message.Contains("YAML") || message.Contains("mapping"))
            Assert.Contains($"--config {config}: ", refused.Message);
    }

    [Fact]
    public void AMissingFileIsRefusedNamingIt()
    {
        var missing = _dir.File("absent.yaml");
        var refused = Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(["--config", missing]));
        Assert.Contains($"--config {missing}: cannot be read", refused.Message);
    }

    /// The server process reads the file: the model, its served name and the port come from it.
    [Fact]
    public async Task AServerStartedWithAConfigFileServesWhatItSays()
    {
        var config = Write($"""
            model: {Fixtures.Dir("llama-gqa")}
            served-model-name: from-yaml
            max-model-len: 96
            """);
        await using var server = ServerProcess.Start(["--config", config]);
        await server.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = server.BaseAddress };
        var models = await client.GetStringAsync("/v1/models");
        Assert.Contains("\"id\":\"from-yaml\"", models);
        Assert.Contains("\"max_model_len\":96", models);
    }

    [Fact]
    public async Task AServerGivenABadFileExitsNamingItAtOnce()
    {
        var config = Write("port: 8000\nmax-num-seq: 4\n");
        await using var server = ServerProcess.Start(["--config", config]);
        Assert.Equal(1, await server.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains($"--config {config}: 'max-num-seq' (line 2) is not a flag of this server", server.Output);
    }
}
