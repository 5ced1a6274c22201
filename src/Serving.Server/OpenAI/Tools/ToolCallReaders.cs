using System.Text;

namespace Serving.Server.OpenAI.Tools;

/// What one streamed text delta of a choice becomes: content, tool-call deltas, or both (either may be null).
internal readonly record struct ToolCallStep(string? Content, IReadOnlyList<ToolCallDelta>? ToolCalls);

/// Turns one choice's generated text into OpenAI's message parts, streamed (Push, delta by delta) or whole
/// (Complete). One reader per choice; the ids it gives its calls stay the same across the stream.
internal abstract class ToolCallReader
{
    readonly List<string> _ids = [];

    public static ToolCallReader For(ChatTools tools, ToolCallParser? autoParser) => tools.Mode switch
    {
        ToolChoiceMode.Named => new NamedCallReader(tools.NamedFunction!),
        ToolChoiceMode.Required => new RequiredCallsReader(),
        ToolChoiceMode.Auto when autoParser is not null => new AutoCallsReader(autoParser),
        _ => new ContentReader(),
    };

    /// The parts one text delta adds; final: the sequence ended (flush what was held back).
    public abstract ToolCallStep Push(string delta, bool final);

    /// The whole message's content and calls.
    public abstract (string? Content, IReadOnlyList<ToolCall>? Calls) Complete(string text);

    /// OpenAI's finish_reason: "tool_calls" when the model called tools on its own or had to call one of
    /// several ("required"); a named function ends with "stop", as OpenAI answers a forced call.
    public virtual string FinishReason(string engineReason, bool calledTools) =>
        engineReason == "stop" && calledTools ? "tool_calls" : engineReason;

    protected string IdOf(int index)
    {
        while (_ids.Count <= index) _ids.Add($"call_{Guid.NewGuid():N}"[..29]);
        return _ids[index];
    }

    protected IReadOnlyList<ToolCall> Calls(IEnumerable<ParsedToolCall> calls) =>
        calls.Select((call, i) => new ToolCall(IdOf(i), new FunctionCall(call.Name, call.Arguments))).ToList();
}

/// No tools in play: the text is the content.
internal sealed class ContentReader : ToolCallReader
{
    public override ToolCallStep Push(string delta, bool final) => new(delta, null);

    public override (string?, IReadOnlyList<ToolCall>?) Complete(string text) => (text, null);
}

/// tool_choice naming a function: the whole text is that call's arguments (constrained to its schema).
internal sealed class NamedCallReader(string name) : ToolCallReader
{
    bool _opened;

    public override ToolCallStep Push(string delta, bool final)
    {
        if (_opened && delta.Length == 0) return new(null, null);
        var first = !_opened;
        _opened = true;
        return new(null, [new ToolCallDelta(0, first ? IdOf(0) : null, first ? "function" : null,
            new FunctionCallDelta(first ? name : null, delta))]);
    }

    public override (string?, IReadOnlyList<ToolCall>?) Complete(string text) => (null, Calls([new ParsedToolCall(name, text)]));

    public override string FinishReason(string engineReason, bool calledTools) => engineReason;
}

/// tool_choice "required": the text is a JSON list of {"name": ..., "parameters": {...}} (constrained), read
/// as it streams: a call opens when its name is complete, and its arguments stream as they are written.
internal sealed class RequiredCallsReader : ToolCallReader
{
    readonly CallListScanner _scanner = new();

    public override ToolCallStep Push(string delta, bool final)
    {
        var deltas = new List<ToolCallDelta>();
        foreach (var c in delta)
        {
            switch (_scanner.Read(c))
            {
                case CallListScanner.Event.NameEnded:
                    deltas.Add(new ToolCallDelta(_scanner.CallIndex, IdOf(_scanner.CallIndex), "function", new FunctionCallDelta(_scanner.Name, "")));
                    break;
                case CallListScanner.Event.ArgumentCharacter:
                    if (deltas.Count > 0 && deltas[^1].Index == _scanner.CallIndex && deltas[^1].Function.Name is null)
                        deltas[^1] = deltas[^1] with { Function = new FunctionCallDelta(null, deltas[^1].Function.Arguments + c) };
                    else deltas.Add(new ToolCallDelta(_scanner.CallIndex, null, null, new FunctionCallDelta(null, c.ToString())));
                    break;
            }
        }
        return new(null, deltas.Count > 0 ? deltas : null);
    }

    public override (string?, IReadOnlyList<ToolCall>?) Complete(string text)
    {
        var scanner = new CallListScanner();
        var calls = new List<(string Name, StringBuilder Arguments)>();
        foreach (var c in text)
        {
            var read = scanner.Read(c);
            if (read == CallListScanner.Event.NameEnded) calls.Add((scanner.Name, new StringBuilder()));
            else if (read == CallListScanner.Event.ArgumentCharacter) calls[^1].Arguments.Append(c);
        }
        return (null, Calls(calls.Select(c => new ParsedToolCall(c.Name, c.Arguments.ToString()))));
    }
}

/// tool_choice "auto": content streams until the parser sees calls begin; the calls are read when the
/// sequence ends (the model's format decides what they are, so they are parsed whole).
internal sealed class AutoCallsReader(ToolCallParser parser) : ToolCallReader
{
    readonly StringBuilder _text = new();
    int _emitted;

    public override ToolCallStep Push(string delta, bool final)
    {
        _text.Append(delta);
        var text = _text.ToString();
        if (final)
        {
            var (content, calls) = parser.Parse(text);
            var tail = calls.Count == 0 ? text[_emitted..] : content is null || content.Length <= _emitted ? "" : content[_emitted..];
            var deltas = Calls(calls).Select((call, i) => new ToolCallDelta(i, call.Id, "function",
                new FunctionCallDelta(call.Function.Name, call.Function.Arguments))).ToList();
            _emitted = text.Length;
            return new(tail, deltas.Count > 0 ? deltas : null);
        }
        var safe = parser.FindStart(text) is { } start ? start : text.Length - parser.PossibleStartLength(text);
        var now = safe > _emitted ? text[_emitted..safe] : "";
        _emitted = Math.Max(_emitted, safe);
        return new(now, null);
    }

    public override (string?, IReadOnlyList<ToolCall>?) Complete(string text)
    {
        var (content, calls) = parser.Parse(text);
        return calls.Count == 0 ? (text, null) : (content, Calls(calls));
    }
}
