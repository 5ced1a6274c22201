using Serving.Engine;
using Serving.Server.OpenAI.Chat;
using Serving.Server.OpenAI.Reasoning;
using Serving.Server.OpenAI.Tools;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --reasoning-parser openai_gptoss: a gpt-oss answer in the harmony format, token by token as the detokenizer hands it
/// over (its markers are special tokens, kept in the text for this parser, the stop token's included), becomes a chat
/// choice's reasoning (the analysis channel) and content (the final channel), streamed and whole alike.
public sealed class HarmonyChoiceTests
{
    // one token per delta, as gpt-oss's tokenizer writes them (each marker one special token)
    static readonly string[] Answer =
    [
        "<|channel|>", "analysis", "<|message|>", "The user", " asks", " for", " the capital.", "<|end|>",
        "<|start|>", "assistant", "<|channel|>", "final", "<|message|>", "Par", "is.", "<|return|>",
    ];

    static ChatChoiceState Choice(bool include) =>
        new(0, "assistant", returnTokenIds: false, names: null!, new ContentReader(), new ReasoningPart(ReasoningParser.Create(ReasoningParser.Harmony),
            "<|start|>user<|message|>Capital of France?<|end|><|start|>assistant", include));

    static TokenEvent Event(int token) => new()
    {
        Index = 0, TokenIds = [token], TextDelta = Answer[token], FinishReason = token == Answer.Length - 1 ? FinishReason.Stop : null,
    };

    [Fact]
    public void AnAnswersAnalysisIsItsReasoningAndItsFinalChannelItsContentStreamedAndWhole()
    {
        var streamed = Choice(include: true);
        var chunks = Enumerable.Range(0, Answer.Length).Select(token => streamed.Append(Event(token))).ToList();
        Assert.Equal("The user asks for the capital.", string.Concat(chunks.Select(c => c.Delta.Reasoning)));
        Assert.Equal("Paris.", string.Concat(chunks.Select(c => c.Delta.Content)));
        Assert.DoesNotContain(chunks, c => (c.Delta.Content ?? "").Contains("<|") || (c.Delta.Reasoning ?? "").Contains("<|"));
        Assert.Equal("stop", chunks[^1].FinishReason);

        var whole = Choice(include: true);
        foreach (var token in Enumerable.Range(0, Answer.Length)) whole.Record(Event(token));
        var message = whole.ToChoice().Message;
        Assert.Equal(("The user asks for the capital.", "Paris."), (message.Reasoning, message.Content));
        Assert.Equal(8, whole.ReasoningTokens());   // through the analysis message's <|end|>

        var hidden = Choice(include: false);
        foreach (var token in Enumerable.Range(0, Answer.Length)) hidden.Record(Event(token));
        Assert.Equal((null, "Paris."), (hidden.ToChoice().Message.Reasoning, hidden.ToChoice().Message.Content));
    }

    [Fact]
    public void AFunctionCallMessageBecomesAToolCallUnderTheOpenaiToolParser()
    {
        string[] answer =
        [
            "<|channel|>", "analysis", "<|message|>", "Need", " the weather.", "<|end|>",
            "<|start|>", "assistant", " to=functions.get_weather", "<|channel|>", "commentary", " json", "<|message|>",
            "{\"city\":", " \"Paris\"}", "<|call|>",
        ];
        ChatChoiceState Calling() => new(0, "assistant", returnTokenIds: false, names: null!, new AutoCallsReader(ToolCallParsers.Create("openai")),
            new ReasoningPart(ReasoningParser.Create(ReasoningParser.Harmony), "<|start|>user<|message|>Weather in Paris?<|end|><|start|>assistant", true,
                KeepFunctionCalls: true));
        TokenEvent At(int token) => new()
        {
            Index = 0, TokenIds = [token], TextDelta = answer[token], FinishReason = token == answer.Length - 1 ? FinishReason.Stop : null,
        };
        var streamed = Calling();
        var chunks = Enumerable.Range(0, answer.Length).Select(token => streamed.Append(At(token))).ToList();
        Assert.Equal("Need the weather.", string.Concat(chunks.Select(c => c.Delta.Reasoning)));
        Assert.Equal("", string.Concat(chunks.Select(c => c.Delta.Content)));
        var call = Assert.Single(chunks.SelectMany(c => c.Delta.ToolCalls ?? []));
        Assert.Equal(("get_weather", "{\"city\":\"Paris\"}"), (call.Function!.Name, call.Function.Arguments));
        Assert.Equal("tool_calls", chunks[^1].FinishReason);

        var whole = Calling();
        foreach (var token in Enumerable.Range(0, answer.Length)) whole.Record(At(token));
        var message = whole.ToChoice().Message;
        Assert.Null(message.Content);
        Assert.Equal("Need the weather.", message.Reasoning);
        Assert.Equal("get_weather", Assert.Single(message.ToolCalls!).Function.Name);
    }
}

/// The server with --reasoning-parser openai_gptoss keeps the answers' special tokens, holds the final channel's body to
/// an output constraint (free until the answer opens that channel, as in vLLM) and refuses a required or named tool.
public sealed class HarmonyReasoningServerTests : IAsyncLifetime
{
    /// A harmony prompt (the default model's tokenizer spells the markers as text): its last message opens the final
    /// channel, so the answer is the final channel's body from its first token.
    const string InsideTheFinalChannel =
        "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}<|start|>assistant<|channel|>final<|message|>";
    const string BetweenMessages = "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}<|start|>assistant";

    static readonly object[] Messages = [new { role = "user", content = "Capital of France?" }];

    RunningServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await RunningServer.StartAsync(["--reasoning-parser", "openai_gptoss", "--trust-request-chat-template"]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task TheServerKeepsTheSpecialTokens()
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Messages, max_tokens = 12, seed = 1, return_token_ids = true,
        });
        Assert.Equal(200, status);
        // the random model writes no harmony markers: its whole answer is content, special tokens spelled out
        var ids = body!["choices"]![0]!["token_ids"]!.AsArray().Select(id => id!.GetValue<int>()).ToArray();
        var (_, spelled) = await _server.PostAsync("/detokenize", new { model = RunningServer.Model, tokens = ids, skip_special_tokens = false });
        Assert.Equal(spelled!["prompt"]!.GetValue<string>(), body["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task AConstraintHoldsTheFinalChannelsBody()
    {
        // the prompt ends inside the final channel: the content is the constrained body
        var (status, body) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Messages, max_tokens = 60, seed = 3, chat_template = InsideTheFinalChannel,
            response_format = new
            {
                type = "json_schema", json_schema = new
                {
                    name = "city", schema = new
                    {
                        type = "object",
                        properties = new { city = new { type = "string", maxLength = 8 } }, required = new[] { "city" }, additionalProperties = false
                    }
                }
            },
        });
        Assert.Equal(200, status);
        var choice = body!["choices"]![0]!;
        Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
        var content = System.Text.Json.Nodes.JsonNode.Parse(choice["message"]!["content"]!.GetValue<string>())!.AsObject();
        Assert.Equal(["city"], content.Select(p => p.Key));

        // between messages the answer is free until it writes the final channel's header, which this model never does
        var (freeStatus, free) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Messages, max_tokens = 12, seed = 3, chat_template = BetweenMessages,
            response_format = new { type = "json_object" },
        });
        Assert.Equal(200, freeStatus);
        Assert.Equal("length", free!["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task ARequiredToolIsRefused()
    {
        var (refused, error) = await _server.PostAsync("/v1/chat/completions", new
        {
            model = RunningServer.Model, messages = Messages, max_tokens = 4, tool_choice = "required",
            tools = new[] { new { type = "function", function = new { name = "get_weather", parameters = new { type = "object" } } } },
        });
        Assert.Equal(400, refused);
        Assert.Equal("tool_choice", error!["error"]!["param"]!.GetValue<string>());
        Assert.Contains("openai_gptoss", error["error"]!["message"]!.GetValue<string>());
    }
}
