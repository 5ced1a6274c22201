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

    /// As yaml.safe_load reads them: yes/no and on/off are booleans (a switch, or a JSON value), an empty list or null
    /// item sets nothing, a list of mappings is a list of JSON objects, `auto` and -1 are --max-model-len's auto.
    [Fact]
    public void YamlValuesReadAsVllmReadsThem()
    {
        var adapter = _dir.File("adapter");
        Directory.CreateDirectory(adapter);
        var options = Bind(ServerCommandLine.ToConfiguration(["--config", Write($"""
            enforce-eager: yes
            enable-prefix-caching: off
            default-chat-template-kwargs: {"{"}enable_thinking: no, budget: .inf, level: 2.5{"}"}
            served-model-name: []
            max-model-len: auto
            enable-lora: true
            lora-modules:
              - name: sql
                path: {adapter}
                base_model_name: llama
              - chat={adapter}
              - ~
            """)]));
        Assert.Equal((true, false), (options.EnforceEager, options.EnablePrefixCaching));
        Assert.Equal("""{"enable_thinking":false,"budget":".inf","level":2.5}""", options.DefaultChatTemplateKwargs);
        Assert.Equal("default", options.ResolvedServedModelName);
        Assert.Equal(Serving.Engine.EngineOptions.AutoMaxModelLen, options.MaxModelLen);
        Assert.Equal([("sql", adapter, "llama"), ("chat", adapter, null)],
            options.ToEngineOptions().LoraModules.Select(m => (m.Name, m.Path, m.BaseModelName)));
        Assert.Equal(-1, Bind(ServerCommandLine.ToConfiguration(["--config", Write("max_model_len: -1\n")])).MaxModelLen);
    }

    /// The command line's list flag replaces the file's; `--config:FILE` and `--config=FILE` are `--config FILE`; the
    /// file's flags stay flags before an end-of-options "--".
    [Fact]
    public void TheFileIsReadHoweverTheCommandLineNamesIt()
    {
        var config = Write("served-model-name: [a, b]\nport: 6379\n");
        Assert.Equal(["c"], Bind(ServerCommandLine.ToConfiguration(["--config", config, "--served-model-name", "c"])).ServedModelNames);
        Assert.Equal(6379, Bind(ServerCommandLine.ToConfiguration([$"--config:{config}"])).Port);
        Assert.Equal(6379, Bind(ServerCommandLine.ToConfiguration([$"--config={config}"])).Port);
        var beforeEnd = Bind(ServerCommandLine.ToConfiguration(["--config", config, "--", "/models/x"]));
        Assert.Equal((6379, "/models/x"), (beforeEnd.Port, beforeEnd.Model));
        // a value starting with "@" is a value, not a file of arguments (vLLM reads none)
        Assert.Equal("@secret", Bind(ServerCommandLine.ToConfiguration(["--config", Write("api-key: \"@secret\"\n")])).ApiKey);
        Assert.Equal("@key", Bind(ServerCommandLine.ToConfiguration(["--api-key", "@key"])).ApiKey);
    }

    /// An option the command line leaves without its value is that error, not a value taken from the file.
    [Fact]
    public void AnUnfinishedCommandLineIsItsOwnError()
    {
        var refused = Assert.Throws<ArgumentException>(() => ServerCommandLine.ToConfiguration(["--config", Write("port: 8000\n"), "--api-key"]));
        Assert.Contains("--api-key", refused.Message);
        Assert.DoesNotContain("named twice", refused.Message);
    }

    [Fact]
    public void FlagsMayBeSpelledWithUnderscoresAsVllmReadsThem()
    {
        var options = Bind(ServerCommandLine.ToConfiguration(["--max_model_len", "128", "--served_model_name=tiny", "--enable_prefix_caching", "false"]));
        Assert.Equal((128, "tiny", false), (options.MaxModelLen, options.ServedModelName, options.EnablePrefixCaching));
        // only a flag's name: a value that looks like a flag keeps its underscores
        Assert.Equal(("--s_k", "my_model"), (Bind(ServerCommandLine.ToConfiguration(["--api-key", "--s_k", "--served_model_name:my_model"])) is var o
            ? (o.ApiKey, o.ServedModelName) : default));
    }

    [Theory]
    [InlineData("port: 8000\nno-such-flag: 1\n", "'no-such-flag' (line 2) is not a flag of this server")]
    [InlineData("--port: 8000\n", "'--port' (line 1) is not a flag of this server (keys are long flag names without the dashes")]
    [InlineData("config: other.yaml\n", "'config' (line 1) is not a flag of this server")]
    [InlineData("help: true\n", "'help' (line 1) is not a flag of this server")]
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
