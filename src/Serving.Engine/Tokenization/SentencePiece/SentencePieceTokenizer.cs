using System.Text;
using Microsoft.ML.Tokenizers;

namespace Serving.Engine.Tokenization.SentencePiece;

/// A tokenizer.model (SentencePiece BPE with byte fallback) through Microsoft.ML.Tokenizers' LlamaTokenizer,
/// whose merges are sentencepiece's. Its normalizer loses texts of one character ("a" gives no token), so the
/// whitespace normalization of the model's spec is done by SentencePieceWhitespace instead. BOS / EOS follow
/// add_bos_token / add_eos_token of tokenizer_config.json (transformers' LlamaTokenizer defaults: BOS yes, EOS no).
internal sealed class SentencePieceTokenizer : ITokenizerBackend
{
    readonly LlamaTokenizer _tokenizer;
    readonly SentencePieceWhitespace _whitespace;
    readonly bool _addBos;
    readonly bool _addEos;
    readonly Dictionary<int, string> _pieces;
    readonly Dictionary<string, int> _ids;
    readonly HashSet<int> _special;

    SentencePieceTokenizer(LlamaTokenizer tokenizer, TokenizerConfig config, IReadOnlyList<AddedToken> addedTokens)
    {
        _tokenizer = tokenizer;
        _whitespace = SentencePieceWhitespace.Of(tokenizer);
        _addBos = config.AddBosToken ?? true;
        _addEos = config.AddEosToken ?? false;
        _ids = new Dictionary<string, int>(tokenizer.Vocabulary, StringComparer.Ordinal);
        foreach (var token in addedTokens) _ids[token.Content] = token.Id;
        _pieces = _ids.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.First().Key);
        _special = [tokenizer.BeginningOfSentenceId, tokenizer.EndOfSentenceId, tokenizer.UnknownId,
            .. addedTokens.Where(t => t.Special).Select(t => t.Id)];
        VocabSize = _pieces.Keys.Max() + 1;
    }

    public int VocabSize { get; }

    public static SentencePieceTokenizer Load(string path, TokenizerConfig config)
    {
        var tokenizer = Create(path, null);
        // Tokens the config adds beyond the model's own pieces are matched in the text as whole tokens, as
        // transformers does; the model's own control pieces (<s>) are left to sentencepiece, which never
        // matches them in text.
        var added = config.AddedTokens.Where(t => !tokenizer.Vocabulary.ContainsKey(t.Content)).ToList();
        if (added.Count > 0) tokenizer = Create(path, added.ToDictionary(t => t.Content, t => t.Id));
        return new SentencePieceTokenizer(tokenizer, config, added);
    }

    static LlamaTokenizer Create(string path, IReadOnlyDictionary<string, int>? specialTokens)
    {
        using var stream = File.OpenRead(path);
        return LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false, specialTokens);
    }

    public int? TokenToId(string token) => _ids.TryGetValue(token, out var id) ? id : null;

    public string? IdToToken(int id) => _pieces.GetValueOrDefault(id);

    public bool IsSpecial(int id) => _special.Contains(id);

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens)
    {
        var ids = new List<int>();
        if (addSpecialTokens && _addBos) ids.Add(_tokenizer.BeginningOfSentenceId);
        var normalized = _whitespace.Normalize(text);
        if (normalized.Length > 0)
        {
            ids.AddRange(_tokenizer.EncodeToIds(normalized, addBeginningOfSentence: false, addEndOfSentence: false,
                considerPreTokenization: false, considerNormalization: false));
        }
        if (addSpecialTokens && _addEos) ids.Add(_tokenizer.EndOfSentenceId);
        return ids;
    }

    public IDecodeStream CreateDecodeStream(bool atStart) => new DecodeStream(this, atStart);

    /// sentencepiece's decoding: "▁" reads as a space, and the one that opens the text is dropped (the dummy
    /// prefix); byte pieces are assembled into characters, each byte that cannot be part of one reading as
    /// U+FFFD. Special pieces read as their text (transformers' convention, where sentencepiece gives "").
    sealed class DecodeStream(SentencePieceTokenizer owner, bool atStart) : IDecodeStream
    {
        readonly List<byte> _bytes = [];
        bool _textStarted = !atStart;

        public void Push(int id, StringBuilder output)
        {
            if (owner.IdToToken(id) is not { } piece) return;
            if (!owner._special.Contains(id) && Utf8Text.TryParseByteToken(piece, out var value))
            {
                _bytes.Add(value);
                Append(output, () => Utf8Text.DecodeEachInvalidByte(_bytes, final: false, output));
                return;
            }
            Flush(output);
            var text = owner._special.Contains(id) ? piece : piece.Replace('▁', ' ');
            if (!_textStarted && text.StartsWith(' ') && !owner._special.Contains(id)) text = text[1..];
            Append(output, () => output.Append(text));
        }

        public void Flush(StringBuilder output) =>
            Append(output, () => Utf8Text.DecodeEachInvalidByte(_bytes, final: true, output));

        void Append(StringBuilder output, Action write)
        {
            var before = output.Length;
            write();
            _textStarted |= output.Length > before;
        }
    }
}
