using System.Text.Json.Nodes;
using Serving.Engine.Config;
using Serving.Engine.Pooling;
using Serving.Engine.Weights;
using Serving.Tests.Shared;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Pooling;

/// The pooling runner against transformers' numbers: the final norm's output times the LM head is the logits, so an
/// unnormalized LAST embedding times the checkpoint's LM head gives the reference's last-position logits, and a MEAN
/// embedding the mean over positions of every logit (the reference's checksum over the prompt). Then: the vector does
/// not depend on chunks, the prefix cache, preemption or what shares the steps; checkpoints as embedding models are
/// published (a base model's tensor names, no LM head, sentence-transformers modules) load and pool as they say.
public sealed class PoolingTests
{
    static readonly string[] Checkpoints = ["llama-gqa", "llama-mha", "llama-sp-mqa", "qwen3-gqa"];

    public static TheoryData<string> Fixtures_ => new(Checkpoints);

    [Theory]
    [MemberData(nameof(Fixtures_))]
    public async Task LastPoolingTimesTheLmHeadGivesTheReferencesLastLogits(string fixture)
    {
        await using var engine = await StartPoolingAsync(fixture, new PoolerConfigOverrides(PoolingType.Last, false, null));
        using var lmHead = LmHead(Fixtures.Dir(fixture));
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var result = await engine.EmbedAsync(Embed(prompt.InputIds, new PoolingParams(PoolingType.Last, false)), default);
            Assert.Equal(prompt.InputIds.Length, result.PromptTokens);
            var logits = Logits(lmHead, result.Embedding);
            for (var v = 0; v < logits.Length; v++) Assert.Equal(prompt.LastLogits[v], logits[v], 1e-3f);
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures_))]
    public async Task MeanPoolingTimesTheLmHeadGivesTheMeanOfTheReferencesLogits(string fixture)
    {
        await using var engine = await StartPoolingAsync(fixture, configure: o => o with { MaxNumBatchedTokens = 3 });
        using var lmHead = LmHead(Fixtures.Dir(fixture));
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            // chunks of 3 tokens: the mean is folded over several steps
            var result = await engine.EmbedAsync(Embed(prompt.InputIds, new PoolingParams(PoolingType.Mean, false)), default);
            var meanLogitSum = Logits(lmHead, result.Embedding).Sum(v => (double)v);
            var expected = prompt.LogitsChecksum.Sum / prompt.InputIds.Length;
            Assert.True(Math.Abs(meanLogitSum - expected) <= 1e-4 * prompt.LogitsChecksum.AbsSum / prompt.InputIds.Length + 1e-3,
                $"{fixture} '{prompt.Text}': sum of the mean embedding's logits {meanLogitSum}, reference {expected}");
        }
    }

    [Fact]
    public async Task ClsPoolsTheFirstTokenAndNormalizeScalesToUnitLength()
    {
        await using var engine = await StartPoolingAsync("llama-gqa");
        Assert.Equal(RunnerType.Pooling, engine.Info.Runner);
        Assert.Equal(new PoolerConfig(PoolingType.Last, true), engine.Info.Pooler);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        var cls = await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Cls, false)), default);
        var first = await engine.EmbedAsync(Embed(prompt[..1], new PoolingParams(PoolingType.Last, false)), default);
        AssertClose(first.Embedding, cls.Embedding, 1e-5f);   // causal: the first position sees only itself

        var raw = await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, false)), default);
        var unit = await engine.EmbedAsync(Embed(prompt, engine.Info.Pooler!.Params()), default);
        var norm = Math.Sqrt(raw.Embedding.Sum(v => (double)v * v));
        AssertClose(raw.Embedding.Select(v => (float)(v / norm)).ToArray(), unit.Embedding, 1e-6f);
        Assert.Equal(1.0, Math.Sqrt(unit.Embedding.Sum(v => (double)v * v)), 1e-5);
    }

    [Fact]
    public async Task VectorsDoNotDependOnChunksThePrefixCachePreemptionOrNeighbours()
    {
        var prompts = Fixtures.Reference("qwen3-gqa").Prompts.Select(p => p.InputIds).ToArray();
        var kinds = new[] { PoolingType.Mean, PoolingType.Cls, PoolingType.Last };   // LAST after the others: their blocks are cached
        var alone = new Dictionary<(int, PoolingType), float[]>();
        await using (var engine = await StartPoolingAsync("qwen3-gqa"))
            foreach (var (prompt, i) in prompts.Select((p, i) => (p, i)))
                foreach (var kind in kinds)
                    alone[(i, kind)] = (await engine.EmbedAsync(Embed(prompt, new PoolingParams(kind, true)), default)).Embedding;

        // chunks of at most 3 tokens, 9 a step, a pool of 5 blocks of 4 tokens: prompts grow side by side until one
        // preempts another
        await using var constrained = await StartPoolingAsync("qwen3-gqa", configure: o => o with
        {
            MaxNumBatchedTokens = 9,
            LongPrefillTokenThreshold = 3,
            BlockSize = 4,
            NumGpuBlocksOverride = 5,
        });
        var requests = Enumerable.Range(0, 3).SelectMany(_ => prompts.Select((p, i) => (p, i)).SelectMany(x => kinds.Select(kind => (x.p, x.i, kind)))).ToList();
        var results = await Task.WhenAll(requests.Select(r => constrained.EmbedAsync(Embed(r.p, new PoolingParams(r.kind, true)), default)));
        for (var r = 0; r < requests.Count; r++)
            AssertClose(alone[(requests[r].i, requests[r].kind)], results[r].Embedding, 1e-5f);
        Assert.True(constrained.GetStats().Preemptions > 0, "the pool was meant to be too small for all at once");
        // LAST pooling reuses the prefix cache: the same prompt again computes only its last block
        await constrained.EmbedAsync(Embed(prompts[0], new PoolingParams(PoolingType.Last, true)), default);
        var again = await constrained.EmbedAsync(Embed(prompts[0], new PoolingParams(PoolingType.Last, true)), default);
        Assert.Equal(12, again.CachedPromptTokens);
        AssertClose(alone[(0, PoolingType.Last)], again.Embedding, 1e-5f);
        await WaitForIdleAsync(constrained);
    }

    [Fact]
    public async Task TheRunnersRefuseEachOthersRequestsAndTheContextIsTheLimit()
    {
        await using var pooling = await StartPoolingAsync("llama-gqa", configure: o => o with { MaxModelLen = 20 });
        var refused = await Assert.ThrowsAsync<InvalidRequestException>(() => CollectAsync(pooling, Greedy([1, 2, 3], 4)));
        Assert.Contains("--runner pooling", refused.Message);
        var full = await pooling.EmbedAsync(Embed(Enumerable.Range(1, 20).ToArray(), pooling.Info.Pooler!.Params()), default);
        Assert.Equal(20, full.PromptTokens);
        var tooLong = await Assert.ThrowsAsync<InvalidRequestException>(() => pooling.EmbedAsync(Embed(Enumerable.Range(1, 21).ToArray(), pooling.Info.Pooler!.Params()), default));
        Assert.Contains("maximum context length is 20 tokens", tooLong.Message);
        Assert.Equal("input", tooLong.Param);
        var dimensions = await Assert.ThrowsAsync<InvalidRequestException>(() => pooling.EmbedAsync(Embed([1, 2], new PoolingParams(PoolingType.Last, true, 8)), default));
        Assert.Equal("dimensions", dimensions.Param);
        Assert.Contains("matryoshka", dimensions.Message);

        await using var generate = await StartAsync("llama-gqa");
        Assert.Equal(RunnerType.Generate, generate.Info.Runner);
        var notPooling = await Assert.ThrowsAsync<InvalidRequestException>(() => generate.EmbedAsync(Embed([1, 2], new PoolingParams(PoolingType.Last, true)), default));
        Assert.Contains("--runner pooling", notPooling.Message);
    }

    [Fact]
    public async Task WhatAnEmbeddingCannotTakeIsSetAsideOrRefusedAndTheEngineServesOn()
    {
        await using var engine = await StartPoolingAsync("llama-gqa", configure: o => o with { NumGpuBlocksOverride = 2, BlockSize = 16 });
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;
        // sampling settings on a request that samples nothing (n = 3, a grammar that does not compile) are set aside:
        // one vector, the plain one, and nothing reaches the engine thread to fail there
        var sampled = Embed(prompt, new PoolingParams(PoolingType.Last, true)) with
        {
            Sampling = Serving.Engine.Sampling.SamplingParams.Greedy with
            {
                N = 3,
                StructuredOutputs = new Serving.Engine.Grammar.StructuredOutputsParams { Regex = "(" },
            },
        };
        var events = new List<TokenEvent>();
        await foreach (var e in engine.GenerateAsync(sampled, default)) events.Add(e);
        AssertClose((await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, true)), default)).Embedding,
            Assert.Single(events).Embedding!, 0f);
        // longer than the whole pool (32 tokens), within the context: the pool's refusal names the input
        var tooBig = await Assert.ThrowsAsync<InvalidRequestException>(() => engine.EmbedAsync(Embed(Enumerable.Range(1, 40).ToArray(), new PoolingParams(PoolingType.Last, true)), default));
        Assert.Equal("input", tooBig.Param);
        Assert.StartsWith("the input (40 tokens) needs 3 KV blocks", tooBig.Message);
        Assert.Equal(EngineState.Ready, engine.State);
        // CLS and MEAN look nothing up in the prefix cache, so they do not count as its queries
        var queries = engine.GetStats().PrefixCacheQueries;
        await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Mean, true)), default);
        Assert.Equal(queries, engine.GetStats().PrefixCacheQueries);
        await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, true)), default);
        Assert.Equal(queries + prompt.Length, engine.GetStats().PrefixCacheQueries);   // queried tokens, as vLLM counts them
    }

    [Fact]
    public async Task PoolerSettingsTheModelCannotHonourFailStartNamingTheFlag()
    {
        var onGenerate = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync("llama-gqa", o => o with
        {
            Runner = RunnerType.Generate,
            PoolerConfig = PoolerConfigOverrides.Parse("""{"normalize": false}"""),
        }));
        Assert.Contains("--pooler-config applies to the pooling runner", onGenerate.Message);
        var dimensions = await Assert.ThrowsAsync<ModelLoadException>(() => StartPoolingAsync("llama-gqa", PoolerConfigOverrides.Parse("""{"dimensions": 16}""")));
        Assert.Contains("--pooler-config dimensions 16", dimensions.Message);
        Assert.Contains("matryoshka", dimensions.Message);
    }

    [Theory]
    [InlineData("""[{"path": "", "type": "sentence_transformers.models.Transformer"}, {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"}]""",
        """{"pooling_mode_mean_tokens": true}""", "sentence_transformers.models.LayerNorm")]
    // a Dense module (EmbeddingGemma's, GemmaTests) needs its config.json, and runs after the pooling, before a Normalize
    [InlineData("""[{"path": "", "type": "sentence_transformers.models.Transformer"}, {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]""",
        """{"pooling_mode_mean_tokens": true}""", "in_features and out_features")]
    [InlineData("""[{"path": "", "type": "sentence_transformers.models.Transformer"}, {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}, {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]""",
        """{"pooling_mode_mean_tokens": true}""", "Pooling, then any Dense, then Normalize last")]
    [InlineData("""[{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]""",
        """{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}""", "pooling_mode_mean_tokens + pooling_mode_cls_token")]
    [InlineData("""[{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]""",
        """{"pooling_mode_max_tokens": true}""", "pooling_mode_max_tokens")]
    public async Task SentenceTransformersModulesThisServerDoesNotRunFailStart(string modules, string pooling, string named)
    {
        using var folder = new TempFolder();
        CopyAsBaseModel(Fixtures.Dir("qwen3-gqa"), folder.Path, "Qwen3Model");
        File.WriteAllText(Path.Combine(folder.Path, "modules.json"), modules);
        Directory.CreateDirectory(Path.Combine(folder.Path, "1_Pooling"));
        File.WriteAllText(Path.Combine(folder.Path, "1_Pooling", "config.json"), pooling);
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync(folder.Path, o => o with { Runner = null }));
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public async Task MatryoshkaDimensionsKeepTheLeadingValuesThenNormalize()
    {
        await using var engine = await StartPoolingAsync("llama-gqa", configure: o => o with { HfOverrides = HfOverrides.Parse("""{"matryoshka_dimensions": [16, 32]}""") });
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;
        var raw = (await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, false)), default)).Embedding;
        var cut = (await engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, true, 16)), default)).Embedding;
        Assert.Equal(16, cut.Length);
        var norm = Math.Sqrt(raw.Take(16).Sum(v => (double)v * v));
        AssertClose(raw.Take(16).Select(v => (float)(v / norm)).ToArray(), cut, 1e-6f);
        var other = await Assert.ThrowsAsync<InvalidRequestException>(() => engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, true, 8)), default));
        Assert.Contains("[16, 32]", other.Message);
    }

    [Fact]
    public async Task ABaseModelCheckpointWithSentenceTransformersModulesPoolsAsTheySay()
    {
        // as sentence-transformers saves Qwen3-Embedding: Qwen3Model tensor names (no "model." prefix), modules.json
        // with a mean Pooling module and a Normalize module
        using var folder = new TempFolder();
        CopyAsBaseModel(Fixtures.Dir("qwen3-gqa"), folder.Path, "Qwen3Model");
        File.WriteAllText(Path.Combine(folder.Path, "modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
            """);
        Directory.CreateDirectory(Path.Combine(folder.Path, "1_Pooling"));
        File.WriteAllText(Path.Combine(folder.Path, "1_Pooling", "config.json"), """
            {"word_embedding_dimension": 64, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_lasttoken": false}
            """);
        var prompt = Fixtures.Reference("qwen3-gqa").Prompts[0].InputIds;
        await using var published = await StartAsync(folder.Path, o => o with { Runner = null });
        Assert.Equal(RunnerType.Pooling, published.Info.Runner);   // auto: a base model pools
        Assert.Equal(new PoolerConfig(PoolingType.Mean, true), published.Info.Pooler);
        var vector = (await published.EmbedAsync(Embed(prompt, published.Info.Pooler!.Params()), default)).Embedding;

        await using var original = await StartPoolingAsync("qwen3-gqa");
        AssertClose((await original.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Mean, true)), default)).Embedding, vector, 1e-6f);

        // --pooler-config replaces the modules' choice, field by field
        await using var overridden = await StartAsync(folder.Path, o => o with { PoolerConfig = PoolerConfigOverrides.Parse("""{"pooling_type": "last"}""") });
        Assert.Equal(new PoolerConfig(PoolingType.Last, true), overridden.Info.Pooler);
    }

    [Fact]
    public async Task SentenceTransformersMaxSeqLengthIsTheServedLength()
    {
        // as vLLM: sentence_bert_config.json's max_seq_length is the model's length (below max_position_embeddings)
        using var folder = new TempFolder();
        CopyAsBaseModel(Fixtures.Dir("qwen3-gqa"), folder.Path, "Qwen3Model");
        File.WriteAllText(Path.Combine(folder.Path, "sentence_bert_config.json"), """{"max_seq_length": 24, "do_lower_case": false}""");
        await using var engine = await StartAsync(folder.Path, o => o with { Runner = null });
        Assert.Equal(24, engine.Info.MaxModelLen);
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() =>
            engine.EmbedAsync(Embed([.. Enumerable.Range(5, 25)], engine.Info.Pooler!.Params()), default));
        Assert.Equal("input", error.Param);
        await engine.EmbedAsync(Embed([.. Enumerable.Range(5, 24)], engine.Info.Pooler!.Params()), default);
        var tooLong = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(folder.Path).ResolveMaxModelLen(32));
        Assert.Contains("max_seq_length = 24", tooLong.Message);
    }

    [Fact]
    public async Task AnUntiedCheckpointWithoutItsLmHeadLoadsForPoolingOnly()
    {
        using var folder = new TempFolder();
        CopyAsBaseModel(Fixtures.Dir("llama-gqa"), folder.Path, "LlamaModel", dropLmHead: true);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var headless = await StartAsync(folder.Path, o => o with { Runner = RunnerType.Pooling });
        var vector = (await headless.EmbedAsync(Embed(prompt, headless.Info.Pooler!.Params()), default)).Embedding;
        await using var original = await StartPoolingAsync("llama-gqa");
        AssertClose((await original.EmbedAsync(Embed(prompt, original.Info.Pooler!.Params()), default)).Embedding, vector, 1e-6f);

        var generate = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(folder.Path, o => o with { Runner = RunnerType.Generate }));
        Assert.Contains("lm_head.weight", generate.Message);
    }

    [Theory]
    [InlineData("llama-gqa", 2)]
    [InlineData("qwen3-gqa", 2)]
    [InlineData("llama-mha", 4)]
    public async Task TensorParallelRanksPoolTheWholeModelsHiddenStates(string fixture, int ranks)
    {
        var prompt = Fixtures.Reference(fixture).Prompts[1].InputIds;
        await using var one = await StartPoolingAsync(fixture);
        await using var split = await StartPoolingAsync(fixture, configure: o => o with { TensorParallelSize = ranks });
        foreach (var kind in new[] { PoolingType.Last, PoolingType.Mean })
            AssertClose((await one.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)), default)).Embedding,
                (await split.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)), default)).Embedding, 1e-4f);
    }

    [Fact]
    public async Task ALoraAdapterEmbedsAsTheMergedModelBesideTheBase()
    {
        using var lora = LoraFixture.Create("llama-gqa");
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var merged = await StartPoolingAsync(lora.Merged.Path);
        await using var plain = await StartPoolingAsync("llama-gqa");
        await using var served = await StartPoolingAsync("llama-gqa", configure: o => o with
        {
            LoraModules = [new Engine.Model.Lora.LoraAdapterSource("tuned", lora.Adapter.Path)],
        });
        var kinds = new[] { PoolingType.Last, PoolingType.Mean };
        foreach (var kind in kinds)
        {
            var expectedTuned = (await merged.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)), default)).Embedding;
            var expectedBase = (await plain.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)), default)).Embedding;
            // the adapter's request and a base one side by side, in the same steps
            var both = await Task.WhenAll(
                served.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)) with { LoraAdapter = "tuned" }, default),
                served.EmbedAsync(Embed(prompt, new PoolingParams(kind, false)), default));
            AssertClose(expectedTuned, both[0].Embedding, 1e-4f);
            AssertClose(expectedBase, both[1].Embedding, 1e-5f);
        }
    }

    [Fact]
    public async Task ASequenceClassifierPoolsItsHeadsLogits()
    {
        // llama-gqa as a LlamaForSequenceClassification checkpoint: its LM head replaced by a 3-label score head
        using var fixture = ClassifierFixture.Create("llama-gqa", ["negative", "neutral", "positive"]);
        var prompt = Fixtures.Reference("llama-gqa").Prompts[1].InputIds;
        await using var classifier = await StartAsync(fixture.Folder.Path, o => o with { Runner = null });
        Assert.Equal(RunnerType.Pooling, classifier.Info.Runner);   // auto: a classifier pools
        Assert.Equal(["negative", "neutral", "positive"], classifier.Info.Labels);
        Assert.Equal(PoolerConfig.Classifier, classifier.Info.Pooler);
        var logits = (await classifier.EmbedAsync(Embed(prompt, classifier.Info.Pooler!.Params()), default)).Embedding;

        // the head times the causal model's last hidden state (itself checked against transformers above)
        await using var causal = await StartPoolingAsync("llama-gqa");
        var hidden = (await causal.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Last, false)), default)).Embedding;
        AssertClose(fixture.Logits(hidden), logits, 1e-4f);
        await using var split = await StartAsync(fixture.Folder.Path, o => o with { Runner = null, TensorParallelSize = 2 });
        AssertClose(logits, (await split.EmbedAsync(Embed(prompt, split.Info.Pooler!.Params()), default)).Embedding, 1e-4f);

        var generate = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync(fixture.Folder.Path, o => o with { Runner = RunnerType.Generate }));
        Assert.Contains("sequence classifier", generate.Message);
        var normalized = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync(fixture.Folder.Path, o => o with
        {
            Runner = null,
            PoolerConfig = PoolerConfigOverrides.Parse("""{"normalize": true}"""),
        }));
        Assert.Contains("--pooler-config", normalized.Message);
        Assert.Contains("no LM head to train", Assert.Throws<ModelLoadException>(() => Serving.Engine.Model.ModelLoader.LoadDecoder(fixture.Folder.Path, "float32", CPU)).Message);
    }

    /// vLLM's classifier_from_token: a causal checkpoint named a sequence classifier (--hf-overrides, as the original
    /// Qwen3-Reranker is served) classifies by its LM head's logits of the tokens: transformers' last-position logits.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ClassifierFromTokenScoresByTheLmHeadsRows(bool twoWay)
    {
        var overrides = twoWay
            ? """{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["a", "b"], "is_original_qwen3_reranker": true}"""
            : """{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["a", "b"], "method": "no_post_processing"}""";
        await using var engine = await StartAsync("qwen3-gqa", o => o with { Runner = null, HfOverrides = HfOverrides.Parse(overrides) });
        Assert.Equal(RunnerType.Pooling, engine.Info.Runner);
        Assert.Equal(twoWay ? ["LABEL_0"] : ["LABEL_0", "LABEL_1"], engine.Info.Labels);   // as vLLM names them
        var (a, b) = (engine.Prompts.Encode("a", addSpecialTokens: false).Single(), engine.Prompts.Encode("b", addSpecialTokens: false).Single());
        foreach (var prompt in Fixtures.Reference("qwen3-gqa").Prompts)
        {
            var logits = (await engine.EmbedAsync(Embed(prompt.InputIds, engine.Info.Pooler!.Params()), default)).Embedding;
            float[] expected = twoWay ? [prompt.LastLogits[b] - prompt.LastLogits[a]] : [prompt.LastLogits[a], prompt.LastLogits[b]];
            AssertClose(expected, logits, 1e-3f);
        }
        var missing = await Assert.ThrowsAsync<ModelLoadException>(() => StartAsync("qwen3-gqa", o => o with
        {
            HfOverrides = HfOverrides.Parse("""{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no-such-token"]}"""),
        }));
        Assert.Contains("no-such-token", missing.Message);
    }

    /// An untied LM head (llama-gqa's) kept for the classifier's rows is given back once they are copied: the model then
    /// weighs a vocabulary of rows less, and still classifies by them.
    [Fact]
    public void AnUntiedLmHeadGoesOnceTheClassifierHasItsRows()
    {
        var overrides = HfOverrides.Parse("""{"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["a", "b"], "is_original_qwen3_reranker": true}""");
        using var model = Serving.Engine.Model.ModelLoader.Load(Fixtures.Dir("llama-gqa"), "float32", lmHead: false, hfOverrides: overrides);
        var tokenizer = Serving.Engine.Tokenization.TextTokenizer.Load(Fixtures.Dir("llama-gqa"));
        var (a, b) = (tokenizer.TokenToId("a")!.Value, tokenizer.TokenToId("b")!.Value);
        var before = model.WeightBytes;
        model.SetClassifierTokens([a, b]);
        Assert.Equal((long)model.Config.VocabSize * model.Config.HiddenSize * 4, before - model.WeightBytes);
        using var cache = model.CreateKVCache(4, 16, Serving.Engine.KVCache.KVCacheDtype.Float32);
        foreach (var prompt in Fixtures.Reference("llama-gqa").Prompts.Where(p => p.InputIds.Length <= 64))
        {
            var n = prompt.InputIds.Length;
            var step = Serving.Engine.Model.StepInputs.Build([new Serving.Engine.Model.StepSequence(prompt.InputIds, 0, n, [0, 1, 2, 3],
                ComputesLogits: false, PooledRows: new RowRange(n - 1, 1))], 16);
            using var output = model.Step(step, cache).Hidden!;
            Assert.Equal(prompt.LastLogits[b] - prompt.LastLogits[a], output.item<float>(), 1e-3f);
        }
    }

    [Fact]
    public async Task ACancelledEmbeddingFreesItsBlocks()
    {
        // 2 tokens a step over 240 (the fixture serves 256): 120 steps, time enough to see it hold blocks on a busy machine
        await using var engine = await StartPoolingAsync("llama-gqa", configure: o => o with { MaxNumBatchedTokens = 2 });
        var prompt = Enumerable.Range(5, 240).ToArray();
        using var cancel = new CancellationTokenSource();
        var pending = engine.EmbedAsync(Embed(prompt, new PoolingParams(PoolingType.Mean, true)), cancel.Token);
        await WaitUntilAsync(engine, stats => stats.KVUsage > 0, "the prompt to take blocks");
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await WaitForIdleAsync(engine);
    }

    [Theory]
    [InlineData("""{"pooling_type": "MEAN", "normalize": false}""", PoolingType.Mean, false, null)]
    [InlineData("""{"dimensions": 16}""", PoolingType.Last, true, 16)]
    public void PoolerConfigTakesVllmsFields(string json, PoolingType type, bool normalize, int? dimensions) =>
        Assert.Equal(new PoolerConfig(type, normalize, dimensions), PoolerConfigOverrides.Parse(json).ApplyTo(PoolerConfig.Default));

    [Theory]
    [InlineData("""{"pooling_type": "STEP"}""", "STEP")]
    [InlineData("""{"softmax": true}""", "softmax")]
    [InlineData("""[1]""", "JSON object")]
    [InlineData("""{"dimensions": 0}""", "at least 1")]
    public void PoolerConfigRefusesWhatItDoesNotTake(string json, string named) =>
        Assert.Contains(named, Assert.Throws<ArgumentException>(() => PoolerConfigOverrides.Parse(json)).Message);

    static Task<LlmEngine> StartPoolingAsync(string fixture, PoolerConfigOverrides? pooler = null, Func<EngineOptions, EngineOptions>? configure = null) =>
        StartAsync(fixture, o => (configure?.Invoke(o) ?? o) with { Runner = RunnerType.Pooling, PoolerConfig = pooler });

    static GenerationRequest Embed(IReadOnlyList<int> prompt, PoolingParams pooling) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"),
        PromptTokenIds = prompt,
        Pooling = pooling,
    };

    /// The checkpoint's LM head (the embedding table when tied), (vocab, hidden) float32.
    static Tensor LmHead(string directory)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        var name = checkpoint.Contains("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
        return checkpoint.Read(name).to_type(ScalarType.Float32);
    }

    static float[] Logits(Tensor lmHead, float[] hidden)
    {
        using var h = tensor(hidden);
        using var logits = lmHead.matmul(h);
        return logits.data<float>().ToArray();
    }

    static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], tolerance);
    }

    /// The fixture as a transformers base model: tensors without "model.", the architecture renamed, optionally no LM head.
    static void CopyAsBaseModel(string from, string to, string architecture, bool dropLmHead = false)
    {
        foreach (var file in Directory.GetFiles(from).Where(f => !f.EndsWith(".safetensors") && !f.EndsWith("config.json")))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(from, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray(architecture);
        File.WriteAllText(Path.Combine(to, "config.json"), config.ToJsonString());
        using var checkpoint = SafetensorsCheckpoint.Open(from);
        var tensors = checkpoint.TensorNames.Where(name => !(dropLmHead && name.StartsWith("lm_head.")))
            .ToDictionary(name => name.StartsWith("model.") ? name["model.".Length..] : name, name => checkpoint.Read(name));
        SafetensorsWriter.Write(Path.Combine(to, "model.safetensors"), tensors);
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("pooling-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}

/// The pooling runner on CUDA: the fused kernels' prefill (float32 weights here, so the tolerance is the
/// reference's) gives the vectors the plain CPU path gives, for every pooling type, in chunks and side by side; and
/// the GPU memory profiler's warm-up is a pooling step (no LM head, no decode graphs).
[Trait("Category", "Gpu"), Collection(Support.GpuCollection.Name)]
public sealed class PoolingGpuTests
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [Support.GpuTheory, MemberData(nameof(Models))]
    public async Task PooledVectorsOnCudaAreTheCpuOnes(string fixture)
    {
        var prompts = Fixtures.Reference(fixture).Prompts.Select(p => p.InputIds).ToArray();
        var kinds = new[] { PoolingType.Last, PoolingType.Mean, PoolingType.Cls };
        EngineOptions Pooling(EngineOptions o) => o with { Runner = RunnerType.Pooling, MaxNumBatchedTokens = 8 };
        await using var cpu = await StartAsync(fixture, Pooling);
        await using var gpu = await StartAsync(fixture, o => Pooling(o) with { Device = "cuda" });
        Assert.Equal(RunnerType.Pooling, gpu.Info.Runner);
        var requests = prompts.SelectMany(p => kinds.Select(kind => (p, kind))).ToList();
        var expected = await Task.WhenAll(requests.Select(r => cpu.EmbedAsync(Request(r.p, r.kind), default)));
        var actual = await Task.WhenAll(requests.Select(r => gpu.EmbedAsync(Request(r.p, r.kind), default)));
        for (var i = 0; i < requests.Count; i++)
        {
            Assert.Equal(expected[i].Embedding.Length, actual[i].Embedding.Length);
            for (var d = 0; d < expected[i].Embedding.Length; d++) Assert.Equal(expected[i].Embedding[d], actual[i].Embedding[d], 1e-3f);
        }
    }

    static GenerationRequest Request(IReadOnlyList<int> prompt, PoolingType kind) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"), PromptTokenIds = prompt, Pooling = new PoolingParams(kind, false),
    };
}
