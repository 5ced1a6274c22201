using System.Text;
using Serving.Engine;

namespace Serving.Server.OpenAI.Completions;

/// How a choice echoes its prompt (echo: true): the prompt's text opens the choice; WithLogprobs lists the
/// prompt's tokens with their log-probabilities before the generated ones; Only (max_tokens 0) drops what the
/// engine generated, as vLLM answers lm-evaluation-harness's loglikelihood requests.
internal sealed record Echo(string Text, bool WithLogprobs, bool Only);

/// One choice of a completions request as its events arrive: Append records an event and gives the
/// streaming delta, Record only records it; ToChoice gives the whole choice.
internal sealed class CompletionChoiceState(int index, PromptInput prompt, Echo? echo, bool returnTokenIds,
    IPromptProcessor prompts, LogprobTokens names)
{
    readonly StringBuilder _text = new(echo?.Text);
    readonly List<int> _tokenIds = [];
    List<TokenLogprob>? _logprobs;
    IReadOnlyList<TokenLogprob?>? _promptLogprobs;
    string? _finishReason;
    StopReason? _stopReason;
    bool _started;
    /// text_offset of the next listed token: after the token texts listed so far.
    int _logprobsEnd;

    public string Text => _text.ToString();

    bool EchoOnly => echo?.Only == true;

    /// Records an event for ToChoice (a whole answer needs no deltas).
    public void Record(TokenEvent e)
    {
        _promptLogprobs ??= e.PromptLogprobs;
        if (EchoOnly)
        {
            _finishReason = e.FinishReason is null ? _finishReason : "length";
            return;
        }
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
        Record(e);
        var generated = EchoOnly ? "" : e.TextDelta;
        var deltaText = first && echo is not null ? echo.Text + generated : generated;
        var deltaLogprobs = first ? EchoedPrompt() : null;
        if (e.Logprobs is not null && !EchoOnly)
        {
            var tokens = LogprobsFormat.Completion(e.Logprobs, _logprobsEnd, names);
            deltaLogprobs = deltaLogprobs is null ? tokens : LogprobsFormat.Concat(deltaLogprobs, tokens);
        }
        if (deltaLogprobs is not null) _logprobsEnd = LogprobsFormat.End(deltaLogprobs);
        return new CompletionChoice(index, deltaText, deltaLogprobs, e.FinishReason is null ? null : _finishReason,
            EchoOnly ? null : e.StopReason.ToOpenAI())
        {
            PromptTokenIds = returnTokenIds && first ? prompt.TokenIds : null,
            TokenIds = returnTokenIds ? (EchoOnly ? [] : e.TokenIds) : null,
        };
    }

    public CompletionChoice ToChoice()
    {
        var logprobs = EchoedPrompt();
        if (_logprobs is not null)
        {
            var generated = LogprobsFormat.Completion(_logprobs, logprobs is null ? 0 : LogprobsFormat.End(logprobs), names);
            logprobs = logprobs is null ? generated : LogprobsFormat.Concat(logprobs, generated);
        }
        return new CompletionChoice(index, _text.ToString(), logprobs, _finishReason, _stopReason.ToOpenAI())
        {
            PromptTokenIds = returnTokenIds ? prompt.TokenIds : null,
            TokenIds = returnTokenIds ? _tokenIds : null,
            PromptLogprobs = _promptLogprobs is null ? null : LogprobsFormat.Prompt(_promptLogprobs, prompts),
        };
    }

    /// With echo and logprobs: the prompt's tokens, from offset 0 (null until the prompt log-probabilities came).
    CompletionLogprobs? EchoedPrompt() =>
        echo?.WithLogprobs == true && _promptLogprobs is not null
            ? LogprobsFormat.Completion(prompt.TokenIds, _promptLogprobs, 0, names)
            : null;
}
