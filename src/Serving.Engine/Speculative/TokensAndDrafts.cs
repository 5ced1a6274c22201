namespace Serving.Engine.Speculative;

/// A sequence's tokens followed by draft tokens, as one read-only list, without copying either.
internal sealed class TokensAndDrafts(IReadOnlyList<int> tokens, IReadOnlyList<int> drafts) : IReadOnlyList<int>
{
    public int Count => tokens.Count + drafts.Count;

    public int this[int index] => index < tokens.Count ? tokens[index] : drafts[index - tokens.Count];

    public IEnumerator<int> GetEnumerator() => tokens.Concat(drafts).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
