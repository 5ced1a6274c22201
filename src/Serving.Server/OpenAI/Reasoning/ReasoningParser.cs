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
