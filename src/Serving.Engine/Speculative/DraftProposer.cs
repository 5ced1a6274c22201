namespace Serving.Engine.Speculative;

/// Where a sequence's drafts come from (SpeculativeConfig.Method): prompt lookup over its own tokens, or suffix
/// decoding, which also remembers earlier requests' outputs. Owned by the scheduler; used on the engine thread.
internal abstract class DraftProposer
{
    public static DraftProposer For(SpeculativeConfig config) => config.Method switch
    {
        SpeculativeMethod.Suffix => new SuffixProposer(config),
        _ => new PromptLookup(config),
    };

    /// Up to maxTokens tokens to follow tokens (a sequence's prompt and output); empty for none. salt: the sequence's
    /// (Sequence.Salt: its LoRA adapter and cache salt; null for neither): only answers of the same salt are drawn from.
    public abstract int[] Propose(ReadOnlySpan<int> tokens, string? salt, int maxTokens);

    /// A request's sequence of this salt finished with this output (stop or length).
    public virtual void Finished(ReadOnlySpan<int> output, string? salt)
    {
    }

    sealed class PromptLookup(SpeculativeConfig config) : DraftProposer
    {
        public override int[] Propose(ReadOnlySpan<int> tokens, string? salt, int maxTokens) => NgramProposer.Propose(tokens, config, maxTokens);
    }
}
