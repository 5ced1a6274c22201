using Serving.Engine.Tokenization;

namespace Serving.LoadGen.Datasets;

/// The vocabulary random prompts are drawn from: ids below VocabSize that are not special tokens, and, when a
/// tokenizer is at hand, the text those ids decode to and the token count of a text.
internal sealed class TokenSpace
{
    readonly TextTokenizer? _tokenizer;
    readonly int[] _ordinaryIds;

    public TokenSpace(int vocabSize, TextTokenizer? tokenizer)
    {
        if (vocabSize < 2) throw new ArgumentException($"vocabulary size {vocabSize} is too small for random prompts");
        _tokenizer = tokenizer;
        _ordinaryIds = Enumerable.Range(0, vocabSize).Where(id => tokenizer is null || !tokenizer.IsSpecial(id)).ToArray();
    }

    public int NumOrdinaryIds => _ordinaryIds.Length;

    /// The i-th ordinary id, wrapping around (vLLM's (offset + index + j) % vocab, over ordinary ids only).
    public int Id(long i) => _ordinaryIds[(int)(((i % _ordinaryIds.Length) + _ordinaryIds.Length) % _ordinaryIds.Length)];

    public TextTokenizer Tokenizer => _tokenizer
        ?? throw new ArgumentException("this dataset needs a tokenizer: pass --tokenizer DIR (a checkpoint folder)");

    public BenchPrompt Prompt(IReadOnlyList<int> ids, PromptFormat format) =>
        format == PromptFormat.Ids ? BenchPrompt.Ids(ids) : BenchPrompt.OfText(Tokenizer.Decode(ids, skipSpecialTokens: true));
}
