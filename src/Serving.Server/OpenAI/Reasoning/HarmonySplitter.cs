using Serving.Engine.Grammar;

namespace Serving.Server.OpenAI.Reasoning;

/// openai_gptoss: gpt-oss's answers in OpenAI's harmony format. The answer is a run of messages after the prompt's
/// `<|start|>assistant`, each a header naming its channel, `<|message|>`, a body, and an end marker: `<|end|>` (then
/// `<|start|>assistant` and the next header), or `<|return|>` / `<|call|>` / `<|endoftext|>`, the stop tokens, whose text
/// the answer carries as it carries every special token under this parser:
///   <|channel|>analysis<|message|>thinking...<|end|><|start|>assistant<|channel|>final<|message|>content...<|return|>
/// The analysis channel's bodies are the thinking; the final channel's, and any other's (commentary), the content; the
/// headers and markers are neither. A function call's message (a header naming a recipient, `to=functions.f`) goes to
/// the content whole, header, body and end marker, when the openai tool-call parser reads the answer
/// (HarmonyCallParser in ../Tools/ToolCallParsers.cs); otherwise its body is content as any other's. A prompt that ends inside a message (continue_final_message, or a template that opens
/// the channel) starts the answer in that message's body.
internal sealed class HarmonyParser : ReasoningParser
{
    public const string Start = "<|start|>", Channel = "<|channel|>", Message = "<|message|>", End = "<|end|>", Analysis = "analysis", Final = "final";

    /// What every harmony marker starts with.
    public const string Marker = "<|";

    /// What a header that addresses a message to a function says (`to=functions.get_weather`).
    public const string ToFunction = "to=functions.";

    /// What ends a message: `<|end|>`, and the stop tokens that end the answer.
    public static readonly string[] Ends = [End, "<|return|>", "<|call|>", "<|endoftext|>"];

    public override string Name => Harmony;

    public override bool ReadsSpecialTokens => true;

    public override bool StartsThinking(string promptText) => OpenChannel(promptText) == Analysis;

    public override IReasoningSplitter Splitter(string promptText, bool keepFunctionCalls = false) =>
        new HarmonySplitter(OpenChannel(promptText), keepFunctionCalls);

    /// The final channel's body meets the constraint: the answer is free (analysis, commentary) until it writes the
    /// final channel's header, `<|channel|>final<|message|>` (vLLM's gpt-oss parser ends the reasoning there too), or
    /// from its first token when the prompt ends inside a final message.
    public override StructuredOutputsParams Constrain(StructuredOutputsParams constraint, string promptText, Func<string, IReadOnlyList<int>> encode) =>
        OpenChannel(promptText) == Final ? constraint : constraint with { AfterTokens = encode(Channel + Final + Message) };

    /// Past the end marker of the analysis message before the first other channel's.
    public override int ThinkingEnd(string text)
    {
        for (var at = text.IndexOf(Channel, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Channel, at + 1, StringComparison.Ordinal))
        {
            if (ChannelOf(text[at..]) == Analysis) continue;
            var lastEnd = text.LastIndexOf(End, at, StringComparison.Ordinal);
            return lastEnd < 0 ? at : lastEnd + End.Length;
        }
        return text.Length;
    }

    /// The channel of the message the prompt ends inside (its header and `<|message|>` written, no end marker yet); null
    /// when the prompt ends between messages.
    static string? OpenChannel(string promptText)
    {
        var start = promptText.LastIndexOf(Start, StringComparison.Ordinal);
        var last = start < 0 ? promptText : promptText[start..];
        var message = last.LastIndexOf(Message, StringComparison.Ordinal);
        if (message < 0 || FirstEnd(last[message..]).Index >= 0) return null;
        return ChannelOf(last[..message]);
    }

    /// The channel a header names (`<|start|>assistant<|channel|>final`, `<|channel|>commentary to=functions.f json`): the
    /// word after `<|channel|>`; "" without one.
    public static string ChannelOf(string header)
    {
        var at = header.IndexOf(Channel, StringComparison.Ordinal);
        if (at < 0) return "";
        var name = header[(at + Channel.Length)..];
        var stop = name.IndexOfAny([' ', '<']);
        return stop < 0 ? name : name[..stop];
    }

    /// The first end marker in text and its length; index -1 when there is none.
    public static (int Index, int Length) FirstEnd(string text)
    {
        var (index, length) = (-1, 0);
        foreach (var end in Ends)
        {
            var at = text.IndexOf(end, StringComparison.Ordinal);
            if (at >= 0 && (index < 0 || at < index)) (index, length) = (at, end.Length);
        }
        return (index, length);
    }
}

/// Divides one harmony answer into thinking and content as it streams (HarmonyParser): headers are read whole, a body's
/// text goes to its channel's side, and a tail that may be the start of an end marker is held back until the next delta
/// or the end. An answer that does not open with a marker is outside the format: all content, as written but for the
/// end markers. openChannel: the channel of the message the prompt left open, null when it left none; keepFunctionCalls:
/// a function call's message stays whole in the content (HarmonyParser).
internal sealed class HarmonySplitter(string? openChannel, bool keepFunctionCalls) : IReasoningSplitter
{
    const string Marker = HarmonyParser.Marker;

    enum Part { Opening, Header, Body }

    Part _part = openChannel is null ? Part.Opening : Part.Body;
    bool _analysis = openChannel == HarmonyParser.Analysis, _outsideTheFormat, _call;
    string _held = "", _header = "";

    public bool Thought { get; private set; } = openChannel == HarmonyParser.Analysis;

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
                // an answer in the format opens with a marker
                _outsideTheFormat = !rest.StartsWith(Marker, StringComparison.Ordinal);
                (_part, text) = _outsideTheFormat ? (Part.Body, text) : (Part.Header, rest);
                continue;
            }
            if (_part == Part.Header)
            {
                var header = _header + text;
                var message = header.IndexOf(HarmonyParser.Message, StringComparison.Ordinal);
                if (message < 0)
                {
                    (_header, text) = (header, "");
                    break;
                }
                var opening = header[..(message + HarmonyParser.Message.Length)];
                _call = keepFunctionCalls && opening.Contains(HarmonyParser.ToFunction, StringComparison.Ordinal);
                _analysis = !_call && HarmonyParser.ChannelOf(opening) == HarmonyParser.Analysis;
                if (_call) content += opening.TrimStart();   // a function call goes to the content whole
                (_part, _header, text) = (Part.Body, "", header[opening.Length..]);
                Thought |= _analysis;
                continue;
            }
            var (end, length) = HarmonyParser.FirstEnd(text);
            var body = end < 0 ? text[..^(final ? 0 : Streaming.MarkerHoldBack.PartialMarkerLength(text, HarmonyParser.Ends))] : text[..end];
            if (_analysis) reasoning += body;
            else content += body;
            if (end < 0)
            {
                _held = text[body.Length..];
                break;
            }
            if (_call) content += text.Substring(end, length);
            // the message ends: the next header follows (outside the format, the marker is only left out)
            (_part, text) = (_outsideTheFormat ? Part.Body : Part.Header, text[(end + length)..]);
        }
        return new(reasoning, content);
    }
}
