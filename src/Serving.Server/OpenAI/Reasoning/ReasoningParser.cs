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
/// - openai_gptoss (gpt-oss): OpenAI's harmony format, whose analysis channel is the thinking and whose final (and
///   commentary) channel the content (HarmonySplitter); it reads the special tokens that mark the channels. Output
///   constraints are refused with it (the format's headers come before any content), and harmony's tool calls are
///   not read.
internal sealed class ReasoningParser
{
    public const string Open = "<think>", Close = Serving.Engine.Grammar.StructuredOutputsParams.ThinkingEnd;

    /// openai_gptoss: gpt-oss's harmony format, its analysis channel the thinking (HarmonySplitter).
    public const string Harmony = "openai_gptoss";

    public static readonly IReadOnlyList<string> Names = ["deepseek_r1", "qwen3", Harmony];

    readonly bool _thinksUnlessClosed;

    ReasoningParser(string name, bool thinksUnlessClosed) => (Name, _thinksUnlessClosed) = (name, thinksUnlessClosed);

    public string Name { get; }

    /// Whether the parser reads the answer's special tokens (harmony's markers are), so the text must keep them.
    public bool ReadsSpecialTokens => Name == Harmony;

    public static ReasoningParser Create(string name) => name switch
    {
        "deepseek_r1" => new ReasoningParser(name, thinksUnlessClosed: true),
        "qwen3" or Harmony => new ReasoningParser(name, thinksUnlessClosed: false),
        _ => throw new ArgumentException($"unknown reasoning parser '{name}'", nameof(name)),
    };

    /// Whether an answer to this prompt starts in thinking before it writes anything (a harmony answer names its
    /// channel first).
    public bool StartsThinking(string promptText)
    {
        if (Name == Harmony) return false;
        var tail = promptText.TrimEnd();
        var openedByPrompt = tail.LastIndexOf(Open, StringComparison.Ordinal) > tail.LastIndexOf(Close, StringComparison.Ordinal);
        return openedByPrompt || _thinksUnlessClosed && !tail.EndsWith(Close, StringComparison.Ordinal);
    }

    /// A splitter for one answer as it streams.
    public IReasoningSplitter Splitter(bool startsThinking) =>
        Name == Harmony ? new HarmonySplitter() : new ReasoningSplitter(startsThinking);

    /// The whole text's thinking (null when it did not think) and content (null when it thought and wrote nothing
    /// after, as vLLM answers).
    public (string? Reasoning, string? Content) Split(string text, bool startsThinking)
    {
        var splitter = Splitter(startsThinking);
        var step = splitter.Push(text, final: true);
        return splitter.Thought ? (step.Reasoning, step.Content.Length == 0 ? null : step.Content) : (null, step.Content);
    }

    /// Where the thinking of a text that thought ends: just past </think>, or past the `<|end|>` of the analysis message
    /// before the first other channel's; the text's length while it still thinks.
    public int ThinkingEnd(string text)
    {
        if (Name != Harmony)
        {
            var close = text.IndexOf(Close, StringComparison.Ordinal);
            return close < 0 ? text.Length : close + Close.Length;
        }
        var end = text.Length;
        for (var at = text.IndexOf("<|channel|>", StringComparison.Ordinal); at >= 0; at = text.IndexOf("<|channel|>", at + 1, StringComparison.Ordinal))
        {
            if (text.AsSpan(at + "<|channel|>".Length).StartsWith("analysis", StringComparison.Ordinal)) continue;
            var lastEnd = text.LastIndexOf("<|end|>", at, StringComparison.Ordinal);
            return lastEnd < 0 ? at : lastEnd + "<|end|>".Length;
        }
        return end;
    }
}
