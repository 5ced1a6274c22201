using System.Text;
using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// A tokenizer.json read the way Hugging Face tokenizers reads it. Encoding runs its pipeline:
///   text ─ added tokens (raw) ─ normalizer ─ added tokens (normalized) ─ pre-tokenizer ─ BPE ─ post-processor
/// Decoding maps ids to their vocabulary strings (added tokens first) and runs the decoder chain.
internal sealed class HfTokenizer : ITokenizerBackend
{
    readonly AddedTokenSplitter _rawTokens;
    readonly AddedTokenSplitter _normalizedTokens;
    readonly INormalizer? _normalizer;
    readonly IPreTokenizer? _preTokenizer;
    readonly BpeModel _model;
    readonly IPostProcessor? _postProcessor;
    readonly IReadOnlyList<IDecoderStep> _decoder;
    readonly Dictionary<int, AddedToken> _addedById;
    readonly Dictionary<string, int> _addedByContent;
    readonly Dictionary<int, string> _modelTokens;

    HfTokenizer(IReadOnlyList<AddedToken> added, INormalizer? normalizer, IPreTokenizer? preTokenizer, BpeModel model,
        IPostProcessor? postProcessor, IReadOnlyList<IDecoderStep> decoder)
    {
        _rawTokens = new AddedTokenSplitter(added.Where(t => !t.Normalized || normalizer is null));
        _normalizedTokens = new AddedTokenSplitter(added.Where(t => t.Normalized && normalizer is not null));
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _addedById = added.ToDictionary(t => t.Id);
        _addedByContent = added.GroupBy(t => t.Content).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        _modelTokens = model.Vocab.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.First().Key);
        VocabSize = Math.Max(_modelTokens.Keys.DefaultIfEmpty(-1).Max(), _addedById.Keys.DefaultIfEmpty(-1).Max()) + 1;
    }

    public int VocabSize { get; }

    /// specialTokensOverride: when tokenizer_config.json sets add_bos_token / add_eos_token, those special tokens
    /// replace the ones the file's post-processor adds (as transformers rebuilds the template).
    public static HfTokenizer Load(string path, Func<HfTokenizerVocab, IPostProcessor?>? specialTokensOverride = null)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var added = root.TryGetProperty("added_tokens", out var list)
            ? list.EnumerateArray().Select(t => AddedToken.FromJson(t, t.GetProperty("id").GetInt32())).ToList()
            : [];
        var model = BpeModel.FromJson(root.GetProperty("model"));
        var vocab = new HfTokenizerVocab(model.Vocab, added);
        var fileProcessor = PostProcessors.FromJson(Property(root, "post_processor"));
        return new HfTokenizer(
            added,
            Normalizers.FromJson(Property(root, "normalizer")),
            PreTokenizers.FromJson(Property(root, "pre_tokenizer")),
            model,
            specialTokensOverride?.Invoke(vocab) ?? fileProcessor,
            Decoders.FromJson(Property(root, "decoder")));
    }

    static JsonElement Property(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) ? value : default;

    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out var added) ? added
        : _model.Vocab.TryGetValue(token, out var id) ? id
        : null;

    public string? IdToToken(int id) =>
        _addedById.TryGetValue(id, out var added) ? added.Content
        : _modelTokens.GetValueOrDefault(id);

    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out var token) && token.Special;

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens)
    {
        var ids = new List<int>();
        foreach (var segment in _rawTokens.Split(text))
        {
            if (segment.TokenId is { } tokenId)
            {
                ids.Add(tokenId);
                continue;
            }
            var normalized = _normalizer?.Normalize(segment.Text) ?? segment.Text;
            foreach (var inner in _normalizedTokens.Split(normalized))
            {
                if (inner.TokenId is { } innerId) ids.Add(innerId);
                else EncodeWords(new Piece(inner.Text, segment.Offset == 0 && inner.Offset == 0), ids);
            }
        }
        return addSpecialTokens && _postProcessor is not null ? _postProcessor.Apply(ids) : ids;
    }

    void EncodeWords(Piece text, List<int> ids)
    {
        if (_preTokenizer is null)
        {
            _model.Tokenize(text.Text, ids);
            return;
        }
        var pieces = new List<Piece>();
        _preTokenizer.PreTokenize(text, pieces);
        foreach (var piece in pieces) _model.Tokenize(piece.Text, ids);
    }

    public IDecodeStream CreateDecodeStream(bool atStart) => new DecodeStream(this, atStart);

    /// Runs the decoder chain over one stream of tokens; Flush closes every stage in order.
    sealed class DecodeStream : IDecodeStream
    {
        readonly HfTokenizer _tokenizer;
        readonly List<DecodeStage> _stages = [];
        readonly Action<string> _head;
        StringBuilder _output = new();

        public DecodeStream(HfTokenizer tokenizer, bool atStart)
        {
            _tokenizer = tokenizer;
            var fusedBefore = new bool[tokenizer._decoder.Count];
            for (var i = 1; i < fusedBefore.Length; i++) fusedBefore[i] = fusedBefore[i - 1] || tokenizer._decoder[i - 1].Fuses;
            Action<string> emit = text => _output.Append(text);
            for (var i = tokenizer._decoder.Count - 1; i >= 0; i--)
            {
                var stage = tokenizer._decoder[i].CreateStage(emit, new DecodeStageContext(atStart, fusedBefore[i]));
                _stages.Insert(0, stage);
                emit = stage.Push;
            }
            _head = emit;
        }

        public void Push(int id, StringBuilder output)
        {
            // Ids outside the vocabulary (a model's padded embedding rows) decode to nothing, as in the reference.
            if (_tokenizer.IdToToken(id) is not { } token) return;
            _output = output;
            _head(token);
        }

        public void Flush(StringBuilder output)
        {
            _output = output;
            foreach (var stage in _stages) stage.Flush();
        }
    }
}

/// The token → id lookups available while a tokenizer.json is being read.
internal sealed class HfTokenizerVocab(IReadOnlyDictionary<string, int> model, IReadOnlyList<AddedToken> added)
{
    public int? IdOf(string token) =>
        added.FirstOrDefault(t => t.Content == token)?.Id ?? (model.TryGetValue(token, out var id) ? id : null);
}
