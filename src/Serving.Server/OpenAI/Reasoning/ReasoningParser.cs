namespace Serving.Server.OpenAI.Reasoning;

/// vLLM's --reasoning-parser: how a reasoning model's answer divides into its thinking, between <think> and
/// </think>, and its content (what follows </think>). Both formats read the text (so a tokenizer that spells the tags
/// in several tokens works alike) and differ only in where an answer starts:
/// - qwen3 (Qwen3, QwQ with a template that writes the tag): in content, unless the answer opens with <think> or the
///   prompt ends inside an open <think> (the templates of Qwen3-2507 thinking models and later write it there).
/// - deepseek_r1 (DeepSeek-R1 and its distills): in thinking, whose opening tag the model may or may not write,
///   unless the prompt already closed it (a template's "thinking off": an empty <think></think> at its end).
/// An answer that starts in thinking meets its output constraint (structured outputs, a required or named tool)
/// after the thinking, as in vLLM; one that starts in content meets it from its first token. Once </think> is read,
/// the rest is content, tags and all.
internal sealed class ReasoningParser
{
    public const string Open = "<think>", Close = Serving.Engine.Grammar.StructuredOutputsParams.ThinkingEnd;

    public static readonly IReadOnlyList<string> Names = ["deepseek_r1", "qwen3"];

    readonly bool _thinksUnlessClosed;

    ReasoningParser(bool thinksUnlessClosed) => _thinksUnlessClosed = thinksUnlessClosed;

    public static ReasoningParser Create(string name) => name switch
    {
        "deepseek_r1" => new ReasoningParser(thinksUnlessClosed: true),
        "qwen3" => new ReasoningParser(thinksUnlessClosed: false),
        _ => throw new ArgumentException($"unknown reasoning parser '{name}'", nameof(name)),
    };

    /// Whether an answer to this prompt starts in thinking before it writes anything.
    public bool StartsThinking(string promptText)
    {
        var tail = promptText.TrimEnd();
        var openedByPrompt = tail.LastIndexOf(Open, StringComparison.Ordinal) > tail.LastIndexOf(Close, StringComparison.Ordinal);
        return openedByPrompt || _thinksUnlessClosed && !tail.EndsWith(Close, StringComparison.Ordinal);
    }
}

/// What one streamed text delta of a choice adds to its thinking and to its content (either may be empty).
internal readonly record struct ReasoningStep(string Reasoning, string Content);

/// Divides one choice's text into thinking and content as it streams (Push, delta by delta; text that may be the
/// start of a tag is held back until the next delta or the end), or whole (Split): both give the same division.
internal sealed class ReasoningSplitter(bool startsThinking)
{
    enum Part { Opening, Thinking, Content }

    // Opening: nothing but white space written yet, so the answer may still open with <think>
    Part _part = Part.Opening;
    string _held = "";

    /// Whether the answer has thought (so far): it has a thinking part, even an empty one.
    public bool Thought { get; private set; }

    /// The whole text's thinking (null when it did not think) and content (null when it thought and wrote
    /// nothing after, as vLLM answers).
    public static (string? Reasoning, string? Content) Split(string text, bool startsThinking)
    {
        var splitter = new ReasoningSplitter(startsThinking);
        var step = splitter.Push(text, final: true);
        return splitter.Thought ? (step.Reasoning, step.Content.Length == 0 ? null : step.Content) : (null, step.Content);
    }

    public ReasoningStep Push(string delta, bool final)
    {
        var text = _held + delta;
        _held = "";
        var reasoning = "";
        if (_part == Part.Opening)
        {
            var start = text.Length - text.TrimStart().Length;
            var rest = text[start..];
            if (rest.StartsWith(ReasoningParser.Open, StringComparison.Ordinal))
            {
                (_part, Thought, text) = (Part.Thinking, true, rest[ReasoningParser.Open.Length..]);
            }
            else if (!final && ReasoningParser.Open.StartsWith(rest, StringComparison.Ordinal))
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
            var close = text.IndexOf(ReasoningParser.Close, StringComparison.Ordinal);
            if (close < 0)
            {
                var partial = final ? 0 : PartialClose(text);
                _held = text[^partial..];
                return new(text[..^partial], "");
            }
            (_part, reasoning, text) = (Part.Content, text[..close], text[(close + ReasoningParser.Close.Length)..]);
        }
        return new(reasoning, text);
    }

    /// Length of the longest tail of text that is a proper prefix of </think>.
    static int PartialClose(string text)
    {
        for (var length = Math.Min(ReasoningParser.Close.Length - 1, text.Length); length > 0; length--)
            if (text.AsSpan(text.Length - length).SequenceEqual(ReasoningParser.Close.AsSpan(0, length))) return length;
        return 0;
    }
}
