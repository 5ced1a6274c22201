namespace Serving.Engine.Speculative;

/// How a step's sampled tokens judge a sequence's drafts. The step samples a token after the sequence's last token and
/// after each draft, each from the model's distribution given everything before it; draft i is kept while every
/// draft before it was kept and the token sampled in its place equals it. With a draft that is a single proposed
/// token (prompt lookup proposes no distribution) this is exactly rejection sampling: the draft is kept with the
/// model's probability of it, and when it is not, the token sampled in its place is distributed as the model's
/// distribution without the draft token, renormalized. So speculation changes how many steps a text takes, never
/// which texts can come out or how likely each is; with greedy sampling the text is the one decoded without it.
internal static class DraftVerification
{
    /// How many of drafts are kept, given sampled[first + i], the token sampled at draft i's place.
    public static int NumAccepted(IReadOnlyList<int> drafts, IReadOnlyList<int> sampled, int first)
    {
        var accepted = 0;
        while (accepted < drafts.Count && sampled[first + accepted] == drafts[accepted])
            accepted++;
        return accepted;
    }

    /// Whether a sequence's sampling lets its steps check drafts: every logits processor of a draft row must see what it
    /// would see after the drafts before it. Penalties, bad words and min_tokens do (a draft row's SamplingState is the
    /// sequence's after those drafts), and a structured output's mask does (AllowedTokens walks the grammar through
    /// them). One pair does not: min_tokens not yet reached under a grammar, whose end lifts min_tokens (MustEnd) at
    /// the sequence's place, not the row's; such a sequence decodes one token per step until min_tokens is reached.
    public static bool CanSpeculate(Sampling.SamplingParams sampling, int numOutputTokens) =>
        sampling.StructuredOutputs is null || numOutputTokens >= sampling.MinTokens;
}
