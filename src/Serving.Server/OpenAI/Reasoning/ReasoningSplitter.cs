namespace Serving.Server.OpenAI.Reasoning;

/// What one streamed text delta of a choice adds to its thinking and to its content (either may be empty).
internal readonly record struct ReasoningStep(string Reasoning, string Content);

/// Divides one answer's text into thinking and content as it streams, delta by delta (ReasoningParser.Split divides a
/// whole text the same way).
internal interface IReasoningSplitter
{
    /// Whether the answer has thought (so far): it has a thinking part, even an empty one.
    bool Thought { get; }

    /// What delta adds to the thinking and to the content; final: the answer's last delta.
    ReasoningStep Push(string delta, bool final);
}

/// Divides one choice's text into thinking and content at <think> tags as it streams (text that may be the start of a
/// tag is held back until the next delta or the end).
internal sealed class ReasoningSplitter(bool startsThinking) : IReasoningSplitter
{
    enum Part { Opening, Thinking, Content }

    // Opening: nothing but white space written yet, so the answer may still open with <think>
    Part _part = Part.Opening;
    string _held = "";

    public bool Thought { get; private set; }

    public ReasoningStep Push(string delta, bool final)
    {
        var text = _held + delta;
        _held = "";
        var reasoning = "";
        if (_part == Part.Opening)
        {
            var start = text.Length - text.TrimStart().Length;
            var rest = text[start..];
            if (rest.StartsWith(ThinkTagParser.Open, StringComparison.Ordinal))
            {
                (_part, Thought, text) = (Part.Thinking, true, rest[ThinkTagParser.Open.Length..]);
            }
            else if (!final && ThinkTagParser.Open.StartsWith(rest, StringComparison.Ordinal))
            {
                _held = text;  // white space, or the beginning of <think>
                return new("", "");
            }
            else
            {
                (_part, Thought) = startsThinking ? (Part.Thinking, true) : (Part.Content, false);
            }
        }
        if (_part == Part.Thinking)
        {
            var close = text.IndexOf(ThinkTagParser.Close, StringComparison.Ordinal);
            if (close < 0)
            {
                var partial = final ? 0 : PartialClose(text);
                _held = text[^partial..];
                return new(text[..^partial], "");
            }
            (_part, reasoning, text) = (Part.Content, text[..close], text[(close + ThinkTagParser.Close.Length)..]);
        }
        return new(reasoning, text);
    }

    /// Length of the longest tail of text that is a proper prefix of </think>.
    static int PartialClose(string text)
    {
        for (var length = Math.Min(ThinkTagParser.Close.Length - 1, text.Length); length > 0; length--)
            if (text.AsSpan(text.Length - length).SequenceEqual(ThinkTagParser.Close.AsSpan(0, length))) return length;
        return 0;
    }
}
