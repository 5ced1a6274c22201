using Serving.Engine.Grammar;

namespace Serving.Server.OpenAI.Reasoning;

/// vLLM's --reasoning-parser: how a reasoning model's answer divides into its thinking and its content. Two read
/// <think> tags (ThinkTagParser): the thinking between <think> and </think>, the content what follows </think>; they
/// read the text (so a tokenizer that spells the tags in several tokens works alike) and differ only in where an
/// answer starts:
/// - qwen3 (Qwen3, QwQ with a template that writes the tag): in content, unless the answer opens with <think> or the
///   prompt ends inside an open <think> (the templates of Qwen3-2507 thinking models and later write it there).
/// - deepseek_r1 (DeepSeek-R1 and its distills): in thinking, whose opening tag the model may or may not write,
///   unless the prompt already closed it (a template's "thinking off": an empty <think></think> at its end).
/// - seed_oss (ByteDance's Seed-OSS): as qwen3, between <seed:think> and </seed:think>.
/// An answer that starts in thinking meets its output constraint (structured outputs, a required or named tool)
/// after the thinking, as in vLLM; one that starts in content meets it from its first token. Once </think> is read,
/// the rest is content, tags and all.
/// - granite (Granite 3.2 and 3.3 with the template's thinking on): the same division at its phrases, "Here is my
///   thought process:" and "Here is my response:" ("Here's" too); the model writes the first itself, so an answer
///   starts in content until it does (and meets an output constraint from its first token).
/// - openai_gptoss (gpt-oss): OpenAI's harmony format, whose analysis channel is the thinking and whose final (and
///   commentary) channel the content (HarmonySplitter); it reads the special tokens that mark the channels. An output
///   constraint (structured outputs) holds the final channel's body: the answer is free until it opens that channel,
///   as in vLLM; a required or named tool_choice is refused with it (harmony writes a call in a header of its own).
///   Its function calls are read by the openai tool-call parser.
internal abstract class ReasoningParser
{
    public const string Harmony = "openai_gptoss";

    public static readonly IReadOnlyList<string> Names = ["deepseek_r1", "qwen3", "granite", "seed_oss", Harmony];

    public static ReasoningParser Create(string name) => name switch
    {
        "deepseek_r1" => new ThinkTagParser(name, thinksUnlessClosed: true),
        "qwen3" => new ThinkTagParser(name, thinksUnlessClosed: false),
        "seed_oss" => new ThinkTagParser(name, thinksUnlessClosed: false, "<seed:think>", "</seed:think>"),
        "granite" => new GraniteReasoningParser(),
        Harmony => new HarmonyParser(),
        _ => throw new ArgumentException($"unknown reasoning parser '{name}'", nameof(name)),
    };

    public abstract string Name { get; }

    /// Whether the parser reads the answer's special tokens (harmony's markers are), so the text must keep them.
    public virtual bool ReadsSpecialTokens => false;

    /// Whether an answer to this prompt starts in thinking before it writes anything.
    public abstract bool StartsThinking(string promptText);

    /// A splitter for one answer to this prompt, as it streams. keepFunctionCalls: a harmony function call stays in the
    /// content for the openai tool-call parser (HarmonyParser; the others have no such messages).
    public abstract IReasoningSplitter Splitter(string promptText, bool keepFunctionCalls = false);

    /// The constraint an answer to this prompt meets (structured outputs, a required or named tool): from its first
    /// token when the answer starts in content, once the thinking ends when it starts thinking, as in vLLM. encode:
    /// the tokenizer's ids of a text, its special tokens read as such. This default (granite's answers start in
    /// content) leaves the constraint as it is; the tag and harmony parsers say where their thinking ends.
    public virtual StructuredOutputsParams Constrain(StructuredOutputsParams constraint, string promptText, Func<string, IReadOnlyList<int>> encode) =>
        constraint;

    /// Where the thinking of a text that thought ends (its length while it still thinks).
    public abstract int ThinkingEnd(string text);

    /// The whole text's thinking (null when it did not think) and content (null when it thought and wrote nothing
    /// after, as vLLM answers).
    public (string? Reasoning, string? Content) Split(string text, string promptText, bool keepFunctionCalls = false)
    {
        var splitter = Splitter(promptText, keepFunctionCalls);
        var step = splitter.Push(text, final: true);
        return splitter.Thought ? (step.Reasoning, step.Content.Length == 0 ? null : step.Content) : (null, step.Content);
    }
}

/// qwen3, deepseek_r1 and seed_oss: the thinking between an open and a close tag (ReasoningSplitter), <think> and
/// </think> unless given.
internal sealed class ThinkTagParser(string name, bool thinksUnlessClosed, string open = "<think>", string close = "</think>")
    : ReasoningParser
{
    readonly ThinkingMarkers _tags = new([open], [close]);

    public override string Name => name;

    public override bool StartsThinking(string promptText)
    {
        var tail = promptText.TrimEnd();
        var openedByPrompt = tail.LastIndexOf(open, StringComparison.Ordinal) > tail.LastIndexOf(close, StringComparison.Ordinal);
        return openedByPrompt || thinksUnlessClosed && !tail.EndsWith(close, StringComparison.Ordinal);
    }

    public override IReasoningSplitter Splitter(string promptText, bool keepFunctionCalls = false) =>
        new ReasoningSplitter(StartsThinking(promptText), _tags);

    /// An answer that starts in its thinking meets the constraint once it wrote the close tag.
    public override StructuredOutputsParams Constrain(StructuredOutputsParams constraint, string promptText, Func<string, IReadOnlyList<int>> encode) =>
        StartsThinking(promptText) ? constraint with { ThinksUntil = close } : constraint;

    /// Just past the close tag.
    public override int ThinkingEnd(string text) => _tags.FindClose(text) is { } end ? end.At + end.Length : text.Length;
}

/// granite: the thinking between "Here is my thought process:" and "Here is my response:" (ReasoningSplitter), which
/// the model writes itself: no prompt opens it.
internal sealed class GraniteReasoningParser : ReasoningParser
{
    static readonly ThinkingMarkers Phrases = new(
        ["Here is my thought process:", "Here's my thought process:"], ["Here is my response:", "Here's my response:"]);

    public override string Name => "granite";

    public override bool StartsThinking(string promptText) => false;

    public override IReasoningSplitter Splitter(string promptText, bool keepFunctionCalls = false) => new ReasoningSplitter(false, Phrases);

    /// Just past the response phrase.
    public override int ThinkingEnd(string text) => Phrases.FindClose(text) is { } close ? close.At + close.Length : text.Length;
}
