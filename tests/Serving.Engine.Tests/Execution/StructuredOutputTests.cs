using System.Text.Json;
using Json.Schema;
using Serving.Engine.Grammar;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Grammar;

namespace Serving.Engine.Tests.Execution;

/// Structured outputs through the real engine: every sequence of a batch under a JSON Schema decodes to a
/// valid instance, with random sampling, n > 1, mixed with free-text rows, and across preemptions.
public sealed class StructuredOutputTests
{
    const string Schema = """
        {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 6},
            "level": {"enum": ["low", "high"]},
            "score": {"type": "integer", "minimum": -9, "maximum": 99}},
         "required": ["name", "level", "score"], "additionalProperties": false}
        """;

    static GenerationRequest Constrained(IReadOnlyList<int> prompt, int seed, int n = 1) => new()
    {
        RequestId = $"json-{seed}",
        PromptTokenIds = prompt,
        Sampling = new SamplingParams
        {
            N = n, MaxTokens = 200, // at most ~170 bytes, whatever the model writes Temperature = 1f, Seed = seed,
            StructuredOutputs = new StructuredOutputsParams { Json = Schema },
        },
    };

    static void AssertValid(Completion completion, int index)
    {
        var text = completion.Text(index);
        Assert.True(completion.Finish(index) == FinishReason.Stop, $"{completion.Finish(index)}: {text}");
        var result = JsonSchema.FromText(Schema).Evaluate(JsonDocument.Parse(text).RootElement);
        Assert.True(result.IsValid, text);
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-sp-mqa")]
    public async Task ConcurrentConstrainedRequestsAllGiveValidJson(string fixture)
    {
        await using var engine = await EngineTestHelpers.StartAsync(fixture);
        var prompt = engine.Prompts.Encode("Describe a player as JSON:");
        var free = EngineTestHelpers.Greedy(prompt, 20, "free");
        var tasks = Enumerable.Range(0, 16).Select(seed => EngineTestHelpers.CollectAsync(engine, Constrained(prompt, seed, n: seed % 4 == 0 ? 2 : 1)))
            .Append(EngineTestHelpers.CollectAsync(engine, free)).ToList();
        var completions = await Task.WhenAll(tasks);
        for (var i = 0; i < 16; i++)
            for (var index = 0; index < (i % 4 == 0 ? 2 : 1); index++)
                AssertValid(completions[i], index);
        Assert.Equal(20, completions[16].Tokens().Length); // the free-text row was not masked
    }

    [Fact]
    public async Task PreemptedSequencesResumeTheirGrammar()
    {
        // 16 blocks of 16 tokens: six sequences of ~60-100 tokens cannot all stay resident
        await using var engine = await EngineTestHelpers.StartAsync(configure: o => o with { NumGpuBlocksOverride = 16 });
        var prompt = engine.Prompts.Encode("JSON please:");
        var completions = await Task.WhenAll(Enumerable.Range(100, 6).Select(seed => EngineTestHelpers.CollectAsync(engine, Constrained(prompt, seed))));
        Assert.True(engine.GetStats().Preemptions > 0, "the test must provoke preemptions");
        foreach (var completion in completions) AssertValid(completion, 0);
    }

    [Fact]
    public async Task ChoiceAndRegexConstrainCompletions()
    {
        await using var engine = await EngineTestHelpers.StartAsync();
        var prompt = engine.Prompts.Encode("Answer:");
        var choice = await EngineTestHelpers.CollectAsync(engine, new GenerationRequest
        {
            RequestId = "choice", PromptTokenIds = prompt,
            Sampling = new SamplingParams { MaxTokens = 20, Seed = 1, StructuredOutputs = new StructuredOutputsParams { Choice = ["alpha", "beta gamma"] } },
        });
        Assert.Contains(choice.Text(), new[] { "alpha", "beta gamma" });
        var regex = await EngineTestHelpers.CollectAsync(engine, new GenerationRequest
        {
            RequestId = "regex", PromptTokenIds = prompt,
            Sampling = new SamplingParams { MaxTokens = 30, Seed = 2, StructuredOutputs = new StructuredOutputsParams { Regex = @"[A-Z]{3}-\d{4}" } },
        });
        Assert.Matches(@"^[A-Z]{3}-\d{4}$", regex.Text());
    }

    /// An opening (AfterTokens: gpt-oss's final-channel header): the output is free, token for token the unconstrained
    /// greedy answer, until it first writes the opening's tokens; from there the constraint holds it to its end.
    [Fact]
    public async Task AfterItsOpeningTheOutputMeetsTheConstraintAndIsFreeBefore()
    {
        await using var engine = await EngineTestHelpers.StartAsync();
        var prompt = engine.Prompts.Encode("Answer:");
        var free = (await EngineTestHelpers.CollectAsync(engine, EngineTestHelpers.Greedy(prompt, 12))).Tokens();
        int[] opening = [free[3], free[4]];
        // the output's length once it has first written the opening
        var opened = Enumerable.Range(1, free.Length - 1).First(i => free[i - 1] == opening[0] && free[i] == opening[1]) + 1;
        var constrained = await EngineTestHelpers.CollectAsync(engine, new GenerationRequest
        {
            RequestId = "opening", PromptTokenIds = prompt,
            Sampling = SamplingParams.Greedy with
            {
                MaxTokens = 40,
                StructuredOutputs = new StructuredOutputsParams { Regex = @"[A-Z]{3}-\d{4}", AfterTokens = opening },
            },
        });
        var tokens = constrained.Tokens();
        Assert.Equal(free[..opened], tokens[..opened]);
        Assert.Matches(@"^[A-Z]{3}-\d{4}$", engine.Prompts.Decode(tokens[opened..], skipSpecialTokens: true));
        Assert.Equal(FinishReason.Stop, constrained.Finish(0));
        // the same constraint without the opening holds from the first token
        var held = await EngineTestHelpers.CollectAsync(engine, new GenerationRequest
        {
            RequestId = "held", PromptTokenIds = prompt,
            Sampling = SamplingParams.Greedy with { MaxTokens = 40, StructuredOutputs = new StructuredOutputsParams { Regex = @"[A-Z]{3}-\d{4}" } },
        });
        Assert.Matches(@"^[A-Z]{3}-\d{4}$", held.Text());
    }

    /// Constraints that exclude one another (allowed_token_ids outside what the grammar allows) are the request's error,
    /// said at the step that has no token left to sample: an InvalidRequestException naming structured_outputs, not a
    /// failure of the server's; the engine serves on.
    [Fact]
    public async Task ConstraintsThatLeaveNoTokenAreTheRequestsError()
    {
        await using var engine = await EngineTestHelpers.StartAsync();
        var prompt = engine.Prompts.Encode("Name:");
        var request = new GenerationRequest
        {
            RequestId = "none", PromptTokenIds = prompt,
            Sampling = SamplingParams.Greedy with
            {
                MaxTokens = 8,
                AllowedTokenIds = [.. engine.Prompts.Encode("123", addSpecialTokens: false)],
                StructuredOutputs = new StructuredOutputsParams { Regex = "[a-z]+" },
            },
        };
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() => EngineTestHelpers.CollectAsync(engine, request));
        Assert.Equal("structured_outputs", error.Param);
        Assert.Equal(4, (await EngineTestHelpers.CollectAsync(engine, EngineTestHelpers.Greedy(prompt, 4))).Tokens().Length);
    }

    [Fact]
    public async Task ABadSchemaIsRefusedBeforeAnyEvent()
    {
        await using var engine = await EngineTestHelpers.StartAsync();
        var request = new GenerationRequest
        {
            RequestId = "bad", PromptTokenIds = [1, 2, 3],
            Sampling = new SamplingParams { StructuredOutputs = new StructuredOutputsParams { Json = """{"type": "object", "propertyNames": {"maxLength": 3}}""" } },
        };
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() => EngineTestHelpers.CollectAsync(engine, request));
        Assert.Equal("structured_outputs", error.Param);
        Assert.Contains("'propertyNames'", error.Message);
    }

    [Fact]
    public async Task SamplerMasksOnlyRowsWithAGrammar()
    {
        var tokenizer = TokenMaskTests.Load("llama3");
        var vocabulary = TokenVocabulary.Create(tokenizer, tokenizer.VocabSize, tokenizer.EosTokenIds);
        var grammar = new GrammarState(GrammarCompiler.Compile(new StructuredOutputsParams { Choice = ["{}"] }), vocabulary);
        var allowedIds = TokenMaskTests.Allowed(grammar, vocabulary);
        var excluded = Enumerable.Range(0, vocabulary.Size).First(id => !allowedIds.Contains(id));
        var rows = new[]
        {
            new SamplingState(SamplingParams.Greedy, [1], [], tokenizer.EosTokenIds, grammar: grammar),
            new SamplingState(SamplingParams.Greedy, [1], [], tokenizer.EosTokenIds),
            // allowed_token_ids outside what its grammar allows: nothing to sample
            new SamplingState(SamplingParams.Greedy with { AllowedTokenIds = [excluded] }, [1], [], tokenizer.EosTokenIds,
                grammar: new GrammarState(GrammarCompiler.Compile(new StructuredOutputsParams { Choice = ["{}"] }), vocabulary)),
        };
        using var logits = Serving.Engine.HeldScalars.Range(0, vocabulary.Size, dtype: TorchSharp.torch.ScalarType.Float32).repeat(3, 1);
        var allowed = await AllowedTokens.StartPreparing(rows)!;
        var output = new Sampler().Sample(logits, rows, allowed);
        Assert.Contains(output.TokenIds[0], allowedIds);
        Assert.Equal(allowedIds.Max(), output.TokenIds[0]); // the largest allowed logit
        Assert.Equal(vocabulary.Size - 1, output.TokenIds[1]);
        Assert.Equal([2], output.RowsWithNoToken);
        Assert.Empty(new Sampler().Sample(logits[..2], rows[..2], await AllowedTokens.StartPreparing(rows[..2])!).RowsWithNoToken);
    }
}
