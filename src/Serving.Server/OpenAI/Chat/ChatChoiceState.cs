using System.Text;
using Serving.Engine;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.OpenAI.Chat;

/// One choice of a chat request as its events arrive: Append records an event and gives the streaming
/// delta, Record only records it; ToChoice gives the whole assistant message. The tool-call reader decides
/// what the text is: content, or the arguments of tool calls.
internal sealed class ChatChoiceState(int index, bool returnTokenIds, IPromptProcessor prompts, ToolCallReader reader)
{
    readonly StringBuilder _text = new();
    readonly List<int> _tokenIds = [];
    List<TokenLogprob>? _logprobs;
    string? _finishReason;
    StopReason? _stopReason;
    bool _streamedCalls;

    public string Text => _text.ToString();

    /// The opening chunk of a streamed choice: the role, and empty content (as OpenAI sends it).
    public ChatChunkChoice RoleDelta() => new(index, new ChatDelta("assistant", ""), null, null, null);

    /// Records an event for ToChoice (a whole answer needs no deltas).
    public void Record(TokenEvent e)
    {
        _text.Append(e.TextDelta);
        _tokenIds.AddRange(e.TokenIds);
        if (e.Logprobs is not null) (_logprobs ??= []).AddRange(e.Logprobs);
        _finishReason = e.FinishReason?.ToOpenAI() ?? _finishReason;
        _stopReason = e.StopReason ?? _stopReason;
    }

    /// Records an event and gives its streaming delta.
    public ChatChunkChoice Append(TokenEvent e)
    {
        Record(e);
        var step = reader.Push(e.TextDelta, final: e.FinishReason is not null);
        _streamedCalls |= step.ToolCalls is { Count: > 0 };
        // The closing chunk of a choice may carry no text: its delta is then {} (OpenAI's shape).
        var content = step.Content is { Length: 0 } && (e.FinishReason is not null || step.ToolCalls is not null) ? null : step.Content;
        var finish = e.FinishReason is { } reason ? reader.FinishReason(reason.ToOpenAI(), _streamedCalls) : null;
        return new ChatChunkChoice(index, new ChatDelta(null, content) { ToolCalls = step.ToolCalls },
            e.Logprobs is null ? null : LogprobsFormat.Chat(e.Logprobs, prompts), finish, e.StopReason.ToOpenAI())
        {
            TokenIds = returnTokenIds ? e.TokenIds : null,
        };
    }

    public ChatChoice ToChoice()
    {
        var (content, calls) = reader.Complete(_text.ToString());
        var finish = _finishReason is null ? null : reader.FinishReason(_finishReason, calls is { Count: > 0 });
        return new(index, new ChatMessage("assistant", content) { ToolCalls = calls },
            _logprobs is null ? null : LogprobsFormat.Chat(_logprobs, prompts), finish, _stopReason.ToOpenAI())
        {
            TokenIds = returnTokenIds ? _tokenIds : null,
        };
    }
}
