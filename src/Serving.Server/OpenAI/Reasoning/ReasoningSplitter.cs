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

/// The markers that open and close a model's thinking in its text (any of several spellings).
internal sealed record ThinkingMarkers(IReadOnlyList<string> Opens, IReadOnlyList<string> Closes)
{
    /// Where the first close in text starts and how long it is; null when none is there.
    public (int At, int Length)? FindClose(string text) =>
        Closes.Select(close => (At: text.IndexOf(close, StringComparison.Ordinal), close.Length)).Where(c => c.At >= 0)
            .OrderBy(c => c.At).Select(c => ((int, int)?)c).FirstOrDefault();

    /// Length of the longest tail of text that is a proper prefix of a close.
    public int PartialClose(string text) => Streaming.MarkerHoldBack.PartialMarkerLength(text, Closes);
}

/// Divides one choice's text into thinking and content at its thinking markers as it streams (text that may be the
/// start of a marker is held back until the next delta or the end).
internal sealed class ReasoningSplitter(bool startsThinking, ThinkingMarkers markers) : IReasoningSplitter
{
    enum Part { Opening, Thinking, Content }

    // Opening: nothing but white space written yet, so the answer may still open its thinking
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
            if (markers.Opens.FirstOrDefault(open => rest.StartsWith(open, StringComparison.Ordinal)) is { } opened)
            {
                (_part, Thought, text) = (Part.Thinking, true, rest[opened.Length..]);
            }
            else if (!final && markers.Opens.Any(open => open.StartsWith(rest, StringComparison.Ordinal)))
            {
                _held = text;  // white space, or the beginning of an opening marker
                return new("", "");
            }
            else
            {
                (_part, Thought) = startsThinking ? (Part.Thinking, true) : (Part.Content, false);
            }
        }
        if (_part == Part.Thinking)
        {
            if (markers.FindClose(text) is not { } close)
            {
                var partial = final ? 0 : markers.PartialClose(text);
                _held = text[^partial..];
                return new(text[..^partial], "");
            }
            (_part, reasoning, text) = (Part.Content, text[..close.At], text[(close.At + close.Length)..]);
        }
        return new(reasoning, text);
    }
}
