using System.Text;
using Serving.Engine;
using Serving.Server.OpenAI.Reasoning;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.OpenAI.Chat;

/// Where a choice's thinking goes under a reasoning parser: the parser, the rendered prompt (whose end may open the
/// thinking), whether the response shows the thinking (include_reasoning) or only leaves it out of the content, and
/// whether harmony's function calls stay in the content for the openai tool-call parser.
internal sealed record ReasoningPart(ReasoningParser Parser, string PromptText, bool Include, bool KeepFunctionCalls = false)
{
    /// Whether an answer starts in thinking (an output constraint then starts after it).
    public bool StartsThinking { get; } = Parser.StartsThinking(PromptText);

    public IReasoningSplitter NewSplitter() => Parser.Splitter(PromptText, KeepFunctionCalls);

    public (string? Reasoning, string? Content) Split(string text) => Parser.Split(text, PromptText, KeepFunctionCalls);
}

/// One choice of a chat request as its events arrive: Append records an event and gives the streaming
/// delta, Record only records it; ToChoice gives the whole message (in role, the assistant's unless --response-role
/// or a continued final message says otherwise). The reasoning part (when the server
/// has a reasoning parser) takes the thinking off the front of the text; the tool-call reader decides what the
/// rest is: content, or the arguments of tool calls.
internal sealed class ChatChoiceState(int index, string role, bool returnTokenIds, LogprobTokens names, ToolCallReader reader,
    ReasoningPart? reasoning)
{
    readonly StringBuilder _text = new();
    readonly List<int> _tokenIds = [];
    readonly List<(int TextLength, int TokenCount)> _afterEvents = [];
    readonly IReasoningSplitter? _splitter = reasoning?.NewSplitter();
    List<TokenLogprob>? _logprobs;
    string? _finishReason;
    StopReason? _stopReason;
    bool _streamedCalls;

    public string Text => _text.ToString();

    /// The opening chunk of a streamed choice: the role, and empty content (as OpenAI sends it).
    public ChatChunkChoice RoleDelta() => new(index, new ChatDelta(role, ""), null, null, null);

    /// Records an event for ToChoice (a whole answer needs no deltas).
    public void Record(TokenEvent e)
    {
        _text.Append(e.TextDelta);
        _tokenIds.AddRange(e.TokenIds);
        _afterEvents.Add((_text.Length, _tokenIds.Count));
        if (e.Logprobs is not null) (_logprobs ??= []).AddRange(e.Logprobs);
        _finishReason = e.FinishReason?.ToOpenAI() ?? _finishReason;
        _stopReason = e.StopReason ?? _stopReason;
    }

    /// Records an event and gives its streaming delta.
    public ChatChunkChoice Append(TokenEvent e)
    {
        Record(e);
        var final = e.FinishReason is not null;
        var split = _splitter?.Push(e.TextDelta, final) ?? new ReasoningStep("", e.TextDelta);
        var thinking = reasoning is { Include: true } && split.Reasoning.Length > 0 ? split.Reasoning : null;
        var step = reader.Push(split.Content, final);
        _streamedCalls |= step.ToolCalls is { Count: > 0 };
        // A chunk without text has no content field when it carries calls, closes the choice, or belongs to an answer
        // that may think (its delta is then {} when it carries nothing: OpenAI's shape).
        var content = step.Content is { Length: 0 } && (final || step.ToolCalls is not null || _splitter is not null) ? null : step.Content;
        var finish = e.FinishReason is { } reason ? reader.FinishReason(reason.ToOpenAI(), _streamedCalls) : null;
        return new ChatChunkChoice(index, new ChatDelta(null, content) { Reasoning = thinking, ToolCalls = step.ToolCalls },
            e.Logprobs is null ? null : LogprobsFormat.Chat(e.Logprobs, names), finish, e.StopReason.ToOpenAI())
        {
            TokenIds = returnTokenIds ? e.TokenIds : null,
        };
    }

    /// The tokens of the answer's thinking, through the event that closed it (all of them while it still thinks):
    /// the Responses API's reasoning_tokens.
    public int ReasoningTokens()
    {
        if (reasoning is null) return 0;
        var text = _text.ToString();
        if (reasoning.Split(text).Reasoning is null) return 0;
        var end = reasoning.Parser.ThinkingEnd(text);
        foreach (var after in _afterEvents)
            if (after.TextLength >= end) return after.TokenCount;
        return _tokenIds.Count;
    }

    public ChatChoice ToChoice()
    {
        var text = _text.ToString();
        var (thinking, rest) = reasoning is null ? (null, text) : reasoning.Split(text);
        var (content, calls) = rest is null ? (null, null) : reader.Complete(rest);
        var finish = _finishReason is null ? null : reader.FinishReason(_finishReason, calls is { Count: > 0 });
        return new(index, new ChatMessage(role, content) { Reasoning = reasoning is { Include: true } ? thinking : null, ToolCalls = calls },
            _logprobs is null ? null : LogprobsFormat.Chat(_logprobs, names), finish, _stopReason.ToOpenAI())
        {
            TokenIds = returnTokenIds ? _tokenIds : null,
        };
    }
}
