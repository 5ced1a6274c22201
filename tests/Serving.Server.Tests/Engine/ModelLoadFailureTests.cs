using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Serving.Server.Engine;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Engine;

/// A model that fails to load stops the server with a non-zero exit code and a message naming the problem
/// (vLLM's behaviour: a supervisor sees the failure), instead of staying up with /health 503.
public sealed class ModelLoadFailureTests
{
    /// Each case breaks a copy of the llama-gqa fixture; the message part is what the log must say.
    static readonly Dictionary<string, (Action<TempDirectory> Break, string Message)> Cases = new()
    {
        ["empty folder"] = (dir => Directory.Delete(dir.Path, true), "config.json"),
        ["corrupt config"] = (dir => File.WriteAllText(dir.File("config.json"), "{ not json"), "config.json"),
        ["zero heads"] = (dir => EditConfig(dir, config => config["num_attention_heads"] = 0), "num_attention_heads"),
        ["huge vocab"] = (dir => EditConfig(dir, config => config["vocab_size"] = 2_000_000_000), "2000000000"),
        ["missing safetensors"] = (dir => File.Delete(dir.File("model.safetensors")), "safetensors"),
        ["truncated safetensors"] = (dir => Truncate(dir.File("model.safetensors")), "model.safetensors"),
        ["bad tensor offset"] = (dir => BreakFirstOffset(dir.File("model.safetensors")), "model.safetensors"),
        ["garbage tokenizer.json"] = (dir => File.WriteAllText(dir.File("tokenizer.json"), "garbage"), "tokenizer.json"),
        ["garbage tokenizer_config.json"] = (dir => File.WriteAllText(dir.File("tokenizer_config.json"), "[1,"), "tokenizer_config.json"),
        ["bad chat template"] = (dir => EditJson(dir.File("tokenizer_config.json"), config => config["chat_template"] = "{% for %}"), "template"),
    };

    public static TheoryData<string> CaseNames => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task ABrokenModelFolderExitsNonZeroWithItsReason(string name)
    {
        using var model = BrokenCopy(Cases[name].Break);
        var (exitCode, log) = await RunAsync(["--model", model.Path]);
        Assert.Equal(1, exitCode);
        Assert.Contains("Engine failed to start", log);
        Assert.True(log.Contains(Cases[name].Message, StringComparison.OrdinalIgnoreCase), log);
    }

    [Fact]
    public async Task AnUnknownPresetNameExitsNonZero()
    {
        var (exitCode, log) = await RunAsync(["--model", "llama9-70b"]);
        Assert.Equal(1, exitCode);
        Assert.Contains("llama9-70b", log);
    }

    /// vLLM's --quantization names how the checkpoint is stored; on an unquantized one the start fails naming the flag,
    /// unless it is fp8 (quantized as it loads), which needs a GPU.
    [Theory]
    [InlineData("awq", "--quantization awq: the checkpoint is not quantized")]
    [InlineData("fp8", "--quantization fp8: FP8 weights need a CUDA GPU")]
    public async Task AQuantizationTheCheckpointDoesNotHaveExitsNonZeroNamingTheFlag(string method, string message)
    {
        var (exitCode, log) = await RunAsync(["--model", Fixtures.Dir("llama-gqa"), "-q", method]);
        Assert.Equal(1, exitCode);
        Assert.Contains(message, log);
    }

    /// The real process: the exit code a supervisor sees, and the reason in its log.
    [Fact]
    public async Task TheServerProcessExitsWith1WhenItsModelDoesNotLoad()
    {
        using var model = BrokenCopy(dir => File.WriteAllText(dir.File("tokenizer.json"), "garbage"));
        await using var server = ServerProcess.Start(["--model", model.Path]);
        Assert.Equal(1, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(model.File("tokenizer.json"), server.Output);
    }

    /// ServerApp.RunAsync as Program.cs calls it, with the log captured from the console.
    static async Task<(int? ExitCode, string Log)> RunAsync(string[] args)
    {
        var flags = Serving.Server.Options.ServerCommandLine.ToConfiguration(["--host", "127.0.0.1", "--port", "0", .. args]);
        var log = new LogCapture();
        var run = ServerApp.RunAsync(flags, (options, loggers) =>
        {
            loggers.AddProvider(log);
            return DefaultEngine.Create(options, loggers);
        });
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60)));
        return (finished == run ? await run : null, string.Join("\n", log.Entries.Select(e => $"{e.Text} {e.Exception?.Message}")));
    }

    static TempDirectory BrokenCopy(Action<TempDirectory> breakIt)
    {
        var dir = new TempDirectory();
        foreach (var file in Directory.GetFiles(Fixtures.Dir("llama-gqa")))
            File.Copy(file, dir.File(Path.GetFileName(file)));
        breakIt(dir);
        Directory.CreateDirectory(dir.Path);
        return dir;
    }

    static void EditConfig(TempDirectory dir, Action<JsonObject> edit) => EditJson(dir.File("config.json"), edit);

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    static void Truncate(string path)
    {
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
    }

    /// Swaps the first tensor's begin and end offsets (the header keeps its length).
    static void BreakFirstOffset(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        var first = header.First(p => p.Key != "__metadata__").Value!["data_offsets"]!.AsArray();
        (first[0], first[1]) = (first[1]!.GetValue<long>(), first[0]!.GetValue<long>());
        var text = header.ToJsonString();
        Assert.True(text.Length <= headerLength, $"{text.Length} > {headerLength}");
        Encoding.UTF8.GetBytes(text.PadRight(headerLength)).CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }
}
