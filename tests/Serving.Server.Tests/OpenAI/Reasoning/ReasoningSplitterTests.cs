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
        Assert.Equal((reasoning, content), ReasoningSplitter.Split(text, startsThinking));

    [Theory]
    [MemberData(nameof(Answers))]
    public void StreamedInAnyCutsGivesTheWholeDivision(string text, bool startsThinking, string? reasoning, string? content)
    {
        foreach (var cuts in Cuttings(text))
        {
            var splitter = new ReasoningSplitter(startsThinking);
            var (streamedReasoning, streamedContent) = ("", "");
            for (var i = 0; i < cuts.Count; i++)
            {
                var step = splitter.Push(cuts[i], final: i == cuts.Count - 1);
                (streamedReasoning, streamedContent) = (streamedReasoning + step.Reasoning, streamedContent + step.Content);
            }
            Assert.Equal(reasoning ?? "", streamedReasoning);
            Assert.Equal(content ?? "", streamedContent);
            Assert.Equal(reasoning is not null, splitter.Thought);
        }
    }

    /// The text one character at a time, cut once at every place, and whole with an empty last delta.
    static IEnumerable<List<string>> Cuttings(string text)
    {
        yield return [.. text.Select(c => c.ToString()), ""];
        for (var at = 0; at <= text.Length; at++) yield return [text[..at], text[at..]];
        yield return [text, ""];
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
        Assert.Throws<ArgumentException>(() => ReasoningParser.Create("granite"));
    }
}
