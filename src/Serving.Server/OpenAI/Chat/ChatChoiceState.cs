using System.Text;
using Serving.Engine;

namespace Serving.Server.OpenAI.Chat;

/// One choice of a chat request as its events arrive: Append records an event and gives the streaming
/// delta, Record only records it; ToChoice gives the whole assistant message.
internal sealed class ChatChoiceState(int index, bool returnTokenIds, IPromptProcessor prompts)
{
    readonly StringBuilder _text = new();
    readonly List<int> _tokenIds = [];
    List<TokenLogprob>? _logprobs;
    string? _finishReason;
    object? _stopReason;

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
        // The closing chunk of a choice may carry no text: its delta is then {} (OpenAI's shape).
        var content = e.TextDelta.Length == 0 && e.FinishReason is not null ? null : e.TextDelta;
        return new ChatChunkChoice(index, new ChatDelta(null, content),
            e.Logprobs is null ? null : LogprobsFormat.Chat(e.Logprobs, prompts), e.FinishReason?.ToOpenAI(), e.StopReason)
        {
            TokenIds = returnTokenIds ? e.TokenIds : null,
        };
    }

    public ChatChoice ToChoice() =>
        new(index, new ChatMessage("assistant", _text.ToString()),
            _logprobs is null ? null : LogprobsFormat.Chat(_logprobs, prompts), _finishReason, _stopReason)
        {
            TokenIds = returnTokenIds ? _tokenIds : null,
        };
}
