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

    /// Up to maxTokens tokens to follow tokens (a sequence's prompt and output); empty for none.
    public abstract int[] Propose(ReadOnlySpan<int> tokens, int maxTokens);

    /// A request's sequence finished with this output (stop or length).
    public virtual void Finished(ReadOnlySpan<int> output)
    {
    }

    sealed class PromptLookup(SpeculativeConfig config) : DraftProposer
    {
        public override int[] Propose(ReadOnlySpan<int> tokens, int maxTokens) => NgramProposer.Propose(tokens, config, maxTokens);
    }
}
