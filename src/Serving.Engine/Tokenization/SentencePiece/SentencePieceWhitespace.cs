using System.Text;
using Microsoft.ML.Tokenizers;

namespace Serving.Engine.Tokenization.SentencePiece;

/// sentencepiece's whitespace normalization (identity rules, as Llama / Mistral models carry): spaces at both
/// ends are dropped and runs of them collapse to one; a text that is left empty encodes to nothing; then a
/// dummy-prefix space is added and every space is written "▁". Only U+0020 counts as a space here.
internal sealed record SentencePieceWhitespace(bool RemoveExtraSpaces, bool AddDummyPrefix, bool EscapeSpaces, bool SpaceAsSuffix)
{
    const char Escape = '▁';

    public static SentencePieceWhitespace Of(LlamaTokenizer tokenizer) =>
        tokenizer.Normalizer is SentencePieceNormalizer spec
            ? new(spec.RemoveExtraWhiteSpaces, spec.AddDummyPrefix, spec.EscapeWhiteSpaces, spec.TreatWhitespaceAsSuffix)
            : new(false, false, false, false);

    public string Normalize(string text)
    {
        var normalized = RemoveExtraSpaces ? CollapseSpaces(text) : text;
        if (normalized.Length == 0) return normalized;
        if (AddDummyPrefix) normalized = SpaceAsSuffix ? normalized + " " : " " + normalized;
        return EscapeSpaces ? normalized.Replace(' ', Escape) : normalized;
    }

    static string CollapseSpaces(string text)
    {
        var result = new StringBuilder(text.Length);
        foreach (var c in text.AsSpan().Trim(' '))
            if (c != ' ' || result[^1] != ' ') result.Append(c);
        return result.ToString();
    }
}
