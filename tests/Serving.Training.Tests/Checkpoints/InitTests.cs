using Serving.Engine;
using Serving.Engine.Config;
using Serving.Engine.Tokenization;
using Serving.Training.Checkpoints;
using Serving.Training.Commands;

using Serving.Training.Tests.Support;

namespace Serving.Training.Tests.Checkpoints;

[Collection(ConsoleCollection.Name)]
public sealed class InitTests
{
    [Fact]
    public async Task ATinyPresetLoadsInTheEngineAndGenerates()
    {
        using var dir = new TempDirectory();
        Assert.Equal(0, InitCommand.Run(CheckpointShapes.Get("tiny-gqa"), dir.Path, seed: 1));
        var config = ModelConfig.Load(dir.Path);
        Assert.Equal((8, 2, 8192), (config.NumAttentionHeads, config.NumKeyValueHeads, config.VocabSize));

        await using var engine = new LlmEngine(new EngineOptions { Model = dir.Path, KVCacheMemoryBytes = 4 << 20 });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await engine.WaitUntilReadyAsync(timeout.Token);
        var prompt = engine.Prompts.Encode("Hello world");
        var request = new GenerationRequest
        {
            RequestId = "init-test", PromptTokenIds = prompt,
            Sampling = Serving.Engine.Sampling.SamplingParams.Greedy with { MaxTokens = 8, IgnoreEos = true },
        };
        var tokens = new List<int>();
        await foreach (var e in engine.GenerateAsync(request, timeout.Token)) tokens.AddRange(e.TokenIds);
        Assert.Equal(8, tokens.Count);
        Assert.All(tokens, id => Assert.InRange(id, 0, 8191));
    }

    /// Export (the served checkpoint re-written) writes every tensor as the checkpoint it read stores it: gpt-oss's
    /// experts too, input-major in the checkpoint, output-major in the model.
    [Fact]
    public void AnExportedCheckpointHoldsTheTensorsItWasReadFrom()
    {
        using var source = new TempDirectory();
        using var exported = new TempDirectory();
        var config = ModelConfigReader.Read(new JsonFields(new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray("GptOssForCausalLM"), ["model_type"] = "gpt_oss",
            ["hidden_size"] = 64, ["intermediate_size"] = 32, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4,
            ["num_key_value_heads"] = 2, ["head_dim"] = 16, ["vocab_size"] = 512, ["num_local_experts"] = 4, ["num_experts_per_tok"] = 2,
            ["max_position_embeddings"] = 256, ["torch_dtype"] = "float32", ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        }, "a tiny gpt-oss"));
        RandomCheckpoint.Write(new CheckpointShape("tiny-gpt-oss", config, 4, "a tiny gpt-oss"), source.Path, seed: 5);
        ReportCommands.Export(source.Path, exported.Path, TorchSharp.torch.ScalarType.Float32, 1L << 30);
        using var read = Serving.Engine.Weights.SafetensorsCheckpoint.Open(source.Path);
        using var written = Serving.Engine.Weights.SafetensorsCheckpoint.Open(exported.Path);
        foreach (var (name, _) in RandomCheckpoint.TensorShapes(config))
        {
            using var a = read.Read(name);
            using var b = written.Read(name);
            Assert.Equal(a.shape, b.shape);
            Assert.True(a.equal(b).all().item<bool>(), name);
        }
    }

    [Fact]
    public void TheSameSeedWritesTheSameWeights()
    {
        using var first = new TempDirectory();
        using var second = new TempDirectory();
        RandomCheckpoint.Write(CheckpointShapes.Get("tiny-mqa"), first.Path, seed: 4);
        RandomCheckpoint.Write(CheckpointShapes.Get("tiny-mqa"), second.Path, seed: 4);
        Assert.Equal(File.ReadAllBytes(first.File("model.safetensors")), File.ReadAllBytes(second.File("model.safetensors")));
        Assert.Equal(1, ModelConfig.Load(first.Path).NumKeyValueHeads);
    }

    [Fact]
    public void TheLlama3TrioDiffersOnlyInKeyValueHeads()
    {
        var configs = new[] { "llama3-8b", "llama3-8b-mha", "llama3-8b-mqa" }.Select(n => CheckpointShapes.Get(n).Config).ToArray();
        Assert.Equal([8, 32, 1], configs.Select(c => c.NumKeyValueHeads));
        var written = configs.Select(c => Serving.Engine.Config.ModelConfigWriter.ToJson(c)).ToArray();
        foreach (var json in written) json.Remove("num_key_value_heads");
        Assert.All(written, json => Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(written[0], json)));
        Assert.Equal((128000, 128001), (configs[0].BosTokenId!.Value, configs[0].EosTokenIds[0]));
    }

    [Fact]
    public void TheGeneratedTokenizerRoundTripsTextAndMarksSpecialTokens()
    {
        using var dir = new TempDirectory();
        ByteLevelBpeTokenizer.Write(dir.Path, vocabSize: 4096, numSpecial: 8, maxLength: 512);
        var tokenizer = TextTokenizer.Load(dir.Path);
        Assert.Equal(4096, tokenizer.VocabSize);
        const string text = "The quick brown fox, 42 times! Ünïcödé ✓";
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.True(ids.Count < System.Text.Encoding.UTF8.GetByteCount(text), "merges should shorten the byte sequence");
        Assert.Equal([4089], tokenizer.EosTokenIds);
        Assert.True(tokenizer.IsSpecial(4088) && !tokenizer.IsSpecial(4087));
        Assert.Equal([4090, 'S'], tokenizer.Encode("<|im_start|>S", addSpecialTokens: false));   // byte tokens have the byte's id
    }

    [Fact]
    public void TheTokenizerFillsALlama3SizedVocabulary()
    {
        var (tokens, merges) = ByteLevelBpeTokenizer.RegularTokens(128000);
        Assert.Equal(128000, tokens.Count);
        Assert.Equal(128000 - 256, merges.Count);
        Assert.Equal(tokens.Count, tokens.Distinct().Count());
    }

    [Fact]
    public void TokenizerOnlyWritesTheShapesTokenizerAndNothingElse()
    {
        using var dir = new TempDirectory();
        Assert.Equal(0, InitCommand.WriteTokenizer(CheckpointShapes.Get("tiny-gqa"), dir.Path));
        Assert.Equal(["tokenizer.json", "tokenizer_config.json"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(8192, TextTokenizer.Load(dir.Path).VocabSize);
    }
}
