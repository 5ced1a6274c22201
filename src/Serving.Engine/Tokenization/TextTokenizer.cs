using System.Text;
using Serving.Engine.Tokenization.HuggingFace;
using Serving.Engine.Tokenization.SentencePiece;

namespace Serving.Engine.Tokenization;

/// The tokenizer of a checkpoint folder: tokenizer.json (preferred, read as Hugging Face tokenizers reads it)
/// or tokenizer.model (SentencePiece), plus tokenizer_config.json (BOS/EOS, add_bos_token, chat template).
/// Immutable and safe to share between threads.
public sealed class TextTokenizer
{
    readonly ITokenizerBackend _backend;

    TextTokenizer(ITokenizerBackend backend, string? bosToken, string? eosToken, IReadOnlyList<int> eosTokenIds, string? chatTemplate)
    {
        _backend = backend;
        BosToken = bosToken;
        BosTokenId = bosToken is { } bos ? backend.TokenToId(bos) : null;
        EosToken = eosToken;
        EosTokenIds = eosTokenIds;
        ChatTemplate = chatTemplate;
        MaxTokenLength = Math.Max(1, Enumerable.Range(0, backend.VocabSize).Max(id => backend.IdToToken(id)?.Length ?? 0));
    }

    /// One past the largest token id, added tokens included.
    public int VocabSize => _backend.VocabSize;

    /// The most characters any one token stands for: its vocabulary string's length (byte-level and "▁"
    /// spellings are one character per byte or character of text; a byte token "<0xE4>" is longer than the
    /// byte it stands for), at least 1. A text needs at least Length / MaxTokenLength tokens, unless the
    /// tokenizer's normalizer shortens it first (stripping, Unicode composition), which real prompts barely do.
    public int MaxTokenLength { get; }

    public int? BosTokenId { get; }

    public string? BosToken { get; }

    /// The ids that end generation: tokenizer_config's eos_token, plus any added by WithExtraEosTokenIds.
    public IReadOnlyList<int> EosTokenIds { get; }

    public string? EosToken { get; }

    /// tokenizer_config.json's chat_template (or its "default" entry), or chat_template.jinja beside it.
    public string? ChatTemplate { get; }

    /// Throws ModelLoadException naming the file at fault.
    public static TextTokenizer Load(string modelDir)
    {
        var config = Read(Path.Combine(modelDir, "tokenizer_config.json"), () => TokenizerConfig.Load(modelDir));
        var jsonPath = Path.Combine(modelDir, "tokenizer.json");
        var modelPath = Path.Combine(modelDir, "tokenizer.model");
        ITokenizerBackend backend = File.Exists(jsonPath) ? Read(jsonPath, () => HfTokenizer.Load(jsonPath, vocab => SpecialTokensFromConfig(config, vocab)))
            : File.Exists(modelPath) ? Read(modelPath, () => SentencePieceTokenizer.Load(modelPath, config))
            : throw new ModelLoadException($"no tokenizer.json or tokenizer.model in {modelDir}");
        var eos = config.EosToken is { } eosToken && backend.TokenToId(eosToken) is { } eosId ? new[] { eosId } : [];
        return new TextTokenizer(backend, config.BosToken, config.EosToken, eos, config.ChatTemplate);
    }

    /// Reads one tokenizer file; whatever goes wrong, the error names the file.
    static T Read<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception error) when (error is not ModelLoadException and not OutOfMemoryException)
        {
            throw new ModelLoadException($"{path}: {error.Message}", error);
        }
    }

    /// The same tokenizer with more end-of-sequence ids (config.json / generation_config.json eos_token_id).
    public TextTokenizer WithExtraEosTokenIds(IEnumerable<int> ids) =>
        new(_backend, BosToken, EosToken, EosTokenIds.Concat(ids).Distinct().ToArray(), ChatTemplate);

    /// addSpecialTokens: add what the tokenizer puts around a text (BOS); special tokens written in the text
    /// are matched either way.
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => _backend.Encode(text, addSpecialTokens);

    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        var output = new StringBuilder();
        var stream = _backend.CreateDecodeStream(atStart: true);
        foreach (var id in ids)
            if (!(skipSpecialTokens && _backend.IsSpecial(id))) stream.Push(id, output);
        stream.Flush(output);
        return output.ToString();
    }

    public bool IsSpecial(int id) => _backend.IsSpecial(id);

    /// The vocabulary string of an id ("Ġworld", "▁world", "<0xE4>"), or null for an unknown id.

    public int? TokenToId(string token) => _backend.TokenToId(token);

    /// The text of one token as it reads in the middle of a text (for log-probabilities): "▁world" gives
    /// " world". A token that is only part of a UTF-8 character reads "bytes:\xNN..." (as vLLM shows it).
    public string TokenText(int id)
    {
        var text = DecodeAlone(id);
        return text.Contains('\uFFFD') && PartialCharacterBytes(id) is { } bytes
            ? "bytes:" + string.Concat(bytes.Select(b => $"\\x{b:x2}"))
            : text;
    }

    /// The bytes a token adds in the middle of a text (what a grammar over bytes sees): its text as UTF-8, or
    /// its raw bytes when it is part of a character. Null for a special token.
    public byte[]? TokenBytes(int id)
    {
        if (IsSpecial(id) || _backend.IdToToken(id) is null)
            return null;
        var text = DecodeAlone(id);
        return text.Contains('\uFFFD') && PartialCharacterBytes(id) is { } bytes ? bytes : Encoding.UTF8.GetBytes(text);
    }

    string DecodeAlone(int id)
    {
        var output = new StringBuilder();
        var stream = _backend.CreateDecodeStream(atStart: false);
        stream.Push(id, output);
        stream.Flush(output);
        return output.ToString();
    }

    /// The raw bytes of a token that spells bytes rather than text: a SentencePiece byte token ("<0xE4>") or
    /// a byte-level BPE token ("Ã¤"); null for any other token.
    byte[]? PartialCharacterBytes(int id)
    {
        if (_backend.IdToToken(id) is not { } token || IsSpecial(id))
            return null;
        return Utf8Text.TryParseByteToken(token, out var value) ? [value] : ByteLevelAlphabet.Decode(token);
    }

    /// A streaming decoder for the tokens generated after promptIds. The prompt only sets the context (a
    /// SentencePiece space after it is kept; a character it left unfinished is completed by the first tokens).
    public IncrementalDetokenizer CreateDetokenizer(IReadOnlyList<int> promptIds, bool skipSpecialTokens) =>
        new(_backend, promptIds, skipSpecialTokens);

    /// Explicit add_bos_token / add_eos_token in tokenizer_config.json decide the special tokens around a text,
    /// as transformers rebuilds the post-processor from them; otherwise the file's post-processor stands.
    static IPostProcessor? SpecialTokensFromConfig(TokenizerConfig config, HfTokenizerVocab vocab)
    {
        if (config.AddBosToken is null && config.AddEosToken is null) return null;
        var before = config.AddBosToken == true && config.BosToken is { } bos && vocab.IdOf(bos) is { } bosId ? new[] { bosId } : [];
        var after = config.AddEosToken == true && config.EosToken is { } eos && vocab.IdOf(eos) is { } eosId ? new[] { eosId } : [];
        return new TemplatePostProcessor(before, after);
    }
}
