using Serving.Engine.Grammar;
using Serving.Server.OpenAI.Reasoning;

namespace Serving.Server.Tests.OpenAI.Reasoning;

/// The division of an answer into thinking and content, whole and streamed in every way of cutting it.
public sealed class ReasoningSplitterTests
{
    public static TheoryData<string, bool, string?, string?> Answers() => new()
    {
        // Qwen3: <think> opens the answer; what follows </think> is the content, as written
        { "<think>\nParis is the capital.\n</think>\n\nParis.", false, "\nParis is the capital.\n", "\n\nParis." },
        { "  \n<think>a</think>b", false, "a", "b" },
        { "Paris.", false, null, "Paris." },
        { "", false, null, "" },
        // a tag later in the answer is content; after </think> everything is content, tags too
        { "I write <think> here", false, null, "I write <think> here" },
        { "<think>a</think>b</think><think>c", false, "a", "b</think><think>c" },
        // cut off while thinking: all thinking, no content (vLLM's answer); an empty thought is still a thought
        { "<think>still going", false, "still going", null },
        { "<think></think>", false, "", null },
        // DeepSeek-R1 style: the answer starts in thinking, its opening tag optional
        { "Let me see.</think>Paris.", true, "Let me see.", "Paris." },
        { "<think>\nLet me see.\n</think>\n\nParis.", true, "\nLet me see.\n", "\n\nParis." },
        { "never closed", true, "never closed", null },
        { "<thin", false, null, "<thin" },
        { "</thi", true, "</thi", null },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public void SplitsWholeAnswers(string text, bool startsThinking, string? reasoning, string? content) =>
        Assert.Equal((reasoning, content), ThinkTags(startsThinking).Split(text, Prompt));

    [Theory]
    [MemberData(nameof(Answers))]
    public void StreamedInAnyCutsGivesTheWholeDivision(string text, bool startsThinking, string? reasoning, string? content)
    {
        foreach (var cuts in Cuttings(text))
        {
            var splitter = ThinkTags(startsThinking).Splitter(Prompt);
            var (streamedReasoning, streamedContent) = Stream(splitter, cuts);
            Assert.Equal(reasoning ?? "", streamedReasoning);
            Assert.Equal(content ?? "", streamedContent);
            Assert.Equal(reasoning is not null, splitter.Thought);
        }
    }

    /// granite: the thinking between its phrases (either spelling), which the answer writes itself.
    public static TheoryData<string, string?, string?> GraniteAnswers() => new()
    {
        { "Here is my thought process:\nCheck the map.\n\nHere is my response:\nParis.", "\nCheck the map.\n\n", "\nParis." },
        { "  Here's my thought process:a Here's my response:b", "a ", "b" },
        { "Here is my thought process: x Here's my response:", " x ", null },
        { "Here is my thought process:\nstill thinking", "\nstill thinking", null },
        { "Here is the answer: Paris.", null, "Here is the answer: Paris." },
        { "Paris. Here is my response: no", null, "Paris. Here is my response: no" },
        { "Here", null, "Here" },
        { "", null, "" },
    };

    [Theory]
    [MemberData(nameof(GraniteAnswers))]
    public void SplitsGraniteAnswersWholeAndStreamedInAnyCuts(string text, string? reasoning, string? content)
    {
        var granite = ReasoningParser.Create("granite");
        Assert.False(granite.StartsThinking(Prompt));
        Assert.Equal((reasoning, content), granite.Split(text, Prompt));
        foreach (var cuts in Cuttings(text))
        {
            var splitter = granite.Splitter(Prompt);
            var (streamedReasoning, streamedContent) = Stream(splitter, cuts);
            Assert.Equal(reasoning ?? "", streamedReasoning);
            Assert.Equal(content ?? "", streamedContent);
            Assert.Equal(reasoning is not null, splitter.Thought);
        }
    }

    const string Prompt = "<|user|>Capital of France?<|assistant|>";

    // deepseek_r1's answers start in thinking after this prompt, qwen3's do not
    static ReasoningParser ThinkTags(bool startsThinking) => ReasoningParser.Create(startsThinking ? "deepseek_r1" : "qwen3");

    const string Analysis = "<|channel|>analysis<|message|>", Final = "<|start|>assistant<|channel|>final<|message|>";
    const string HarmonyPrompt = "<|start|>user<|message|>Capital of France?<|end|><|start|>assistant";

    /// gpt-oss's harmony answers: the analysis channel is the thinking, the other channels the content, markers neither.
    public static TheoryData<string, string?, string?> HarmonyAnswers() => new()
    {
        { Analysis + "The user asks.<|end|>" + Final + "Paris.", "The user asks.", "Paris." },
        { "<|channel|>final<|message|>Paris.<|return|>", null, "Paris." },
        // the stop tokens' text is in the answer: none of them is content
        { Analysis + "Hm.<|end|>" + Final + "Paris.<|endoftext|>", "Hm.", "Paris." },
        { Analysis + "a<|end|><|start|>assistant" + Analysis + "b<|end|>" + Final + "c", "ab", "c" },
        // cut off while thinking, or right after: all thinking
        { Analysis + "still going", "still going", null },
        { Analysis + "done<|end|>", "done", null },
        // commentary is content, and so is a function call's body when no tool-call parser reads calls
        { "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>final<|message|>Done.", null, "Checking.Done." },
        { "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>", null, "{}" },
        // what looks like the start of a marker inside a body, and an answer outside the format, are kept as written
        { "<|channel|>final<|message|>a <| b <|en", null, "a <| b <|en" },
        { "Paris, <|end|>.<|return|>", null, "Paris, ." },
        { "", null, "" },
    };

    [Theory]
    [MemberData(nameof(HarmonyAnswers))]
    public void SplitsHarmonyAnswersWholeAndStreamedInAnyCuts(string text, string? reasoning, string? content)
    {
        var parser = ReasoningParser.Create(ReasoningParser.Harmony);
        Assert.False(parser.StartsThinking(HarmonyPrompt));
        Assert.Equal((reasoning, content), parser.Split(text, HarmonyPrompt));
        foreach (var cuts in Cuttings(text))
        {
            var splitter = parser.Splitter(HarmonyPrompt);
            var (streamedReasoning, streamedContent) = Stream(splitter, cuts);
            Assert.Equal(reasoning ?? "", streamedReasoning);
            Assert.Equal(content ?? "", streamedContent);
            Assert.Equal(reasoning is not null, splitter.Thought);
        }
    }

    [Fact]
    public void UnderTheOpenaiToolParserAFunctionCallStaysWholeInTheContent()
    {
        var parser = ReasoningParser.Create(ReasoningParser.Harmony);
        const string call = "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}<|call|>";
        Assert.Equal(("Hm.", call), parser.Split(Analysis + "Hm.<|end|>" + call, HarmonyPrompt, keepFunctionCalls: true));
        Assert.Equal(("Hm.", "{}"), parser.Split(Analysis + "Hm.<|end|>" + call, HarmonyPrompt));
    }

    [Fact]
    public void APromptThatOpensAChannelStartsTheAnswerInItsBody()
    {
        var parser = ReasoningParser.Create(ReasoningParser.Harmony);
        var thinking = HarmonyPrompt + "<|channel|>analysis<|message|>";
        Assert.True(parser.StartsThinking(thinking));
        Assert.Equal(("Hm.", "Paris."), parser.Split("Hm.<|end|>" + Final + "Paris.<|return|>", thinking));
        // continue_final_message: the final channel's text goes on
        var continued = HarmonyPrompt + "<|channel|>final<|message|>The capital is ";
        Assert.False(parser.StartsThinking(continued));
        Assert.Equal((null, "Paris."), parser.Split("Paris.<|return|>", continued));
    }

    [Fact]
    public void TheThinkingEndsAfterItsTagOrItsLastAnalysisMessage()
    {
        Assert.Equal("<think>a</think>".Length, ReasoningParser.Create("qwen3").ThinkingEnd("<think>a</think>b"));
        Assert.Equal(3, ReasoningParser.Create("qwen3").ThinkingEnd("abc"));
        var harmony = ReasoningParser.Create(ReasoningParser.Harmony);
        var thought = Analysis + "a<|end|><|start|>assistant" + Analysis + "b<|end|>";
        Assert.Equal(thought.Length, harmony.ThinkingEnd(thought + Final + "c"));
        Assert.Equal((Analysis + "still").Length, harmony.ThinkingEnd(Analysis + "still"));
    }

    /// What a splitter gives for the deltas, the last one final: the thinking and the content, each concatenated.
    static (string Reasoning, string Content) Stream(IReasoningSplitter splitter, List<string> cuts)
    {
        var (reasoning, content) = ("", "");
        for (var i = 0; i < cuts.Count; i++)
        {
            var step = splitter.Push(cuts[i], final: i == cuts.Count - 1);
            (reasoning, content) = (reasoning + step.Reasoning, content + step.Content);
        }
        return (reasoning, content);
    }

    /// The text one character at a time, cut once at every place, and whole with an empty last delta.
    static IEnumerable<List<string>> Cuttings(string text)
    {
        yield return [.. text.Select(c => c.ToString()), ""];
        for (var at = 0; at <= text.Length; at++) yield return [text[..at], text[at..]];
        yield return [text, ""];
    }

    /// seed_oss reads Seed-OSS's own tags as qwen3 reads <think>; a constraint waits for its close tag.
    [Fact]
    public void SeedOssThinksBetweenItsOwnTags()
    {
        var seed = ReasoningParser.Create("seed_oss");
        const string prompt = "<seed:bos>user\nHi<seed:eos><seed:bos>assistant\n";
        Assert.Equal(("Hmm, <think> is not mine.", "Hello."), seed.Split("<seed:think>Hmm, <think> is not mine.</seed:think>Hello.", prompt));
        Assert.Equal((null, "Hello."), seed.Split("Hello.", prompt));
        Assert.Equal("<seed:think>a</seed:think>".Length, seed.ThinkingEnd("<seed:think>a</seed:think>b"));
        var json = new StructuredOutputsParams { JsonObject = true };
        Assert.Null(seed.Constrain(json, prompt, _ => []).ThinksUntil);
        Assert.Equal("</seed:think>", seed.Constrain(json, prompt + "<seed:think>", _ => []).ThinksUntil);
        Assert.Equal("</think>", ReasoningParser.Create("deepseek_r1").Constrain(json, "<|Assistant|>", _ => []).ThinksUntil);
    }

    [Fact]
    public void WhereAnAnswerStartsDependsOnThePromptsEnd()
    {
        var qwen3 = ReasoningParser.Create("qwen3");
        var deepSeek = ReasoningParser.Create("deepseek_r1");
        const string open = "<|im_start|>assistant\n", opened = "<|im_start|>assistant\n<think>\n",
            closed = "<|im_start|>assistant\n<think>\n\n</think>\n\n", earlier = "<think>a</think>b<|im_start|>assistant\n";
        Assert.Equal([false, true, false, false], new[] { open, opened, closed, earlier }.Select(qwen3.StartsThinking));
        Assert.Equal([true, true, false, true], new[] { open, opened, closed, earlier }.Select(deepSeek.StartsThinking));
        Assert.Throws<ArgumentException>(() => ReasoningParser.Create("ernie45"));
    }
}
