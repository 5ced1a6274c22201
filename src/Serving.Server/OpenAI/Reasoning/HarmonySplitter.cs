namespace Serving.Server.OpenAI.Reasoning;

/// Divides a gpt-oss answer, written in OpenAI's harmony format, into thinking and content (--reasoning-parser
/// openai_gptoss). The answer is a run of messages after the prompt's `<|start|>assistant`, each a header naming its
/// channel, `<|message|>`, a body, and `<|end|>` (then `<|start|>assistant` and the next header) or the end of the
/// answer (`<|return|>`, `<|call|>`: stop tokens, usually left out of the text):
///   <|channel|>analysis<|message|>thinking...<|end|><|start|>assistant<|channel|>final<|message|>content...
/// The analysis channel's bodies are the thinking; the final channel's, and any other's (commentary), the content; the
/// headers and markers are neither. It reads the text with its special tokens (the chat path keeps them for this
/// parser). Text that does not open with a marker is content as it stands, so an answer outside the format is kept.
/// Push streams (a tail that may be the start of a marker is held back until the next delta or the end); Split gives
/// the same division of a whole text.
internal sealed class HarmonySplitter : IReasoningSplitter
{
    const string Message = "<|message|>", Channel = "<|channel|>", Marker = "<|";
    static readonly string[] Ends = ["<|end|>", "<|return|>", "<|call|>"];

    enum Part { Opening, Header, Body }

    Part _part = Part.Opening;
    string _held = "", _header = "";
    bool _analysis, _outsideTheFormat;

    public bool Thought { get; private set; }

    public ReasoningStep Push(string delta, bool final)
    {
        var text = _held + delta;
        _held = "";
        var (reasoning, content) = ("", "");
        while (text.Length > 0)
        {
            if (_part == Part.Opening)
            {
                var rest = text.TrimStart();
                if (!final && rest.Length < Marker.Length && Marker.StartsWith(rest, StringComparison.Ordinal))
                {
                    _held = text;   // white space, or the beginning of a marker
                    break;
                }
                // an answer in the format opens with a marker; any other is all content, as written
                _outsideTheFormat = !rest.StartsWith(Marker, StringComparison.Ordinal);
                if (_outsideTheFormat)
                {
                    content += text;
                    (_part, text) = (Part.Body, "");
                    break;
                }
                (_part, text) = (Part.Header, rest);
                continue;
            }
            if (_part == Part.Header)
            {
                var message = (_header + text).IndexOf(Message, StringComparison.Ordinal);
                if (message < 0)
                {
                    _header += text;
                    text = "";
                    break;
                }
                var header = _header + text;
                (_part, _analysis, _header, text) = (Part.Body, ChannelOf(header[..message]) == "analysis", "", header[(message + Message.Length)..]);
                Thought |= _analysis;
                continue;
            }
            if (_outsideTheFormat)
            {
                content += text;
                break;
            }
            var (end, length) = FirstEnd(text);
            var body = end < 0 ? text[..^(final ? 0 : PartialEnd(text))] : text[..end];
            if (_analysis) reasoning += body;
            else content += body;
            if (end < 0)
            {
                _held = text[body.Length..];
                break;
            }
            (_part, text) = (Part.Header, text[(end + length)..]);
        }
        return new(reasoning, content);
    }

    /// The channel a header names (`<|start|>assistant<|channel|>final`, `<|channel|>commentary to=functions.f json`): the
    /// word after `<|channel|>`; "" without one.
    static string ChannelOf(string header)
    {
        var at = header.IndexOf(Channel, StringComparison.Ordinal);
        if (at < 0) return "";
        var name = header[(at + Channel.Length)..];
        var stop = name.IndexOfAny([' ', '<']);
        return stop < 0 ? name : name[..stop];
    }

    static (int Index, int Length) FirstEnd(string text)
    {
        var (index, length) = (-1, 0);
        foreach (var end in Ends)
        {
            var at = text.IndexOf(end, StringComparison.Ordinal);
            if (at >= 0 && (index < 0 || at < index)) (index, length) = (at, end.Length);
        }
        return (index, length);
    }

    /// Length of the longest tail of text that is a proper prefix of an end marker.
    static int PartialEnd(string text)
    {
        var longest = 0;
        foreach (var end in Ends)
            for (var length = Math.Min(end.Length - 1, text.Length); length > longest; length--)
                if (text.AsSpan(text.Length - length).SequenceEqual(end.AsSpan(0, length))) longest = length;
        return longest;
    }
}
