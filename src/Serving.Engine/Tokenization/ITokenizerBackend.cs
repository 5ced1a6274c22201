using System.Text;

namespace Serving.Engine.Tokenization;

/// One tokenizer file format (tokenizer.json or tokenizer.model) behind TextTokenizer.
internal interface ITokenizerBackend
{
    /// One past the largest token id, added tokens included.
    int VocabSize { get; }

    int? TokenToId(string token);

    /// The vocabulary string of an id (byte-level or "▁" spelling), or null when the id is unknown.
    string? IdToToken(int id);

    bool IsSpecial(int id);

    IReadOnlyList<int> Encode(string text, bool addSpecialTokens);

    /// A fresh decoder state. atStart: the first token pushed opens the text (decoders strip the space a
    /// SentencePiece tokenizer put in front of it); false for a token shown on its own, mid-text.
    IDecodeStream CreateDecodeStream(bool atStart);
}

/// Decodes a stream of token ids left to right. Decode(ids) pushes every id then flushes, so the text a stream
/// appends over any sequence of pushes equals the one-shot decode of those ids: streaming and batch agree by
/// construction. A stream appends only whole characters; bytes of an unfinished one stay inside until later
/// tokens complete it or Flush replaces them.
internal interface IDecodeStream
{
    void Push(int id, StringBuilder output);

    void Flush(StringBuilder output);
}
