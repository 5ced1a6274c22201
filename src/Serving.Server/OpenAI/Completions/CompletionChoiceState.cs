using System.Text;
using Serving.Engine;

namespace Serving.Server.OpenAI.Completions;

/// One choice of a completions request as its events arrive: Append records an event and gives the
/// streaming delta, Record only records it; ToChoice gives the whole choice. echoText, when set, is the prompt text that opens the choice.
internal sealed class CompletionChoiceState(int index, PromptInput prompt, string? echoText, bool returnTokenIds,
    IPromptProcessor prompts)
{
    readonly StringBuilder _text = new(echoText);
    readonly List<int> _tokenIds = [];
    List<TokenLogprob>? _logprobs;
    string? _finishReason;
    StopReason? _stopReason;
    bool _started;
    /// text_offset of the next listed token: after the echo and the token texts listed so far.
    int _logprobsEnd = echoText?.Length ?? 0;

    public string Text => _text.ToString();

    /// Records an event for ToChoice (a whole answer needs no deltas).
    public void Record(TokenEvent e)
    {
        _text.Append(e.TextDelta);
        _tokenIds.AddRange(e.TokenIds);
        _finishReason = e.FinishReason?.ToOpenAI() ?? _finishReason;
        _stopReason = e.StopReason ?? _stopReason;
        if (e.Logprobs is not null) (_logprobs ??= []).AddRange(e.Logprobs);
    }

    /// Records an event and gives its streaming delta.
    public CompletionChoice Append(TokenEvent e)
    {
        var first = !_started;
        _started = true;
        var deltaText = first && echoText is not null ? echoText + e.TextDelta : e.TextDelta;
        Record(e);
        CompletionLogprobs? deltaLogprobs = null;
        if (e.Logprobs is not null)
        {
            deltaLogprobs = LogprobsFormat.Completion(e.Logprobs, _logprobsEnd, prompts);
            _logprobsEnd += deltaLogprobs.Tokens.Sum(token => token.Length);
        }
        return new CompletionChoice(index, deltaText, deltaLogprobs, e.FinishReason?.ToOpenAI(), e.StopReason.ToOpenAI())
        {
            PromptTokenIds = returnTokenIds && first ? prompt.TokenIds : null,
            TokenIds = returnTokenIds ? e.TokenIds : null,
        };
    }

    public CompletionChoice ToChoice() =>
        new(index, _text.ToString(),
            _logprobs is null ? null : LogprobsFormat.Completion(_logprobs, echoText?.Length ?? 0, prompts),
            _finishReason, _stopReason.ToOpenAI())
        {
            PromptTokenIds = returnTokenIds ? prompt.TokenIds : null,
            TokenIds = returnTokenIds ? _tokenIds : null,
        };
}
