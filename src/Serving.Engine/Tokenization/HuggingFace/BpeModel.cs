using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// The "model" of a tokenizer.json of type BPE, working on code points as tokenizers does: a word starts as
/// one symbol per character (unknown characters become their UTF-8 byte tokens with byte_fallback, or the unk
/// token), then the adjacent pair with the lowest merge rank, leftmost first, is merged until none applies.
/// Microsoft.ML.Tokenizers' BpeTokenizer works on UTF-16 units (a pair such as "x🙂" never merges) and has no
/// byte_fallback nor ignore_merges, hence this merge loop.
internal sealed class BpeModel
{
    const int CacheCapacity = 10_000;
    // Without a pre-tokenizer (Llama-2 style files) a whole prompt is one word: only short words are cached.
    const int CachedWordMaxLength = 256;

    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> _merges;
    readonly BpeOptions _options;
    readonly ConcurrentDictionary<string, int[]> _cache = new();

    BpeModel(Dictionary<string, int> vocab, Dictionary<(int, int), (int, int)> merges, BpeOptions options)
    {
        _vocab = vocab;
        _merges = merges;
        _options = options;
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public static BpeModel FromJson(JsonElement model)
    {
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
        if (type != "BPE") throw new NotSupportedException($"tokenizer.json: model type '{type}' is not supported (only BPE)");
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new NotSupportedException("tokenizer.json: BPE dropout is a training option and is not supported");
        var vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32(), StringComparer.Ordinal);
        var options = BpeOptions.FromJson(model);
        return new BpeModel(vocab, ReadMerges(model.GetProperty("merges"), vocab, options), options);
    }

    /// Merges come as "a b" strings or, in newer files, as [a, b] pairs; rank is the position in the list.
    static Dictionary<(int, int), (int, int)> ReadMerges(JsonElement merges, Dictionary<string, int> vocab, BpeOptions options)
    {
        var result = new Dictionary<(int, int), (int, int)>();
        var rank = 0;
        foreach (var merge in merges.EnumerateArray())
        {
            var (left, right) = merge.ValueKind == JsonValueKind.Array
                ? (merge[0].GetString()!, merge[1].GetString()!)
                : SplitMergeLine(merge.GetString()!);
            var merged = left + (options.ContinuingSubwordPrefix is { } prefix && right.StartsWith(prefix, StringComparison.Ordinal) ? right[prefix.Length..] : right);
            result.TryAdd((IdOf(vocab, left), IdOf(vocab, right)), (rank++, IdOf(vocab, merged)));
        }
        return result;
    }

    static (string, string) SplitMergeLine(string line)
    {
        var parts = line.Split(' ');
        if (parts.Length != 2) throw new InvalidDataException($"tokenizer.json: merge '{line}' is not two tokens");
        return (parts[0], parts[1]);
    }

    static int IdOf(Dictionary<string, int> vocab, string token) =>
        vocab.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"tokenizer.json: merge token '{token}' is not in the vocab");

    public void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (!_cache.TryGetValue(word, out var ids))
        {
            ids = Compute(word);
            if (word.Length <= CachedWordMaxLength && _cache.Count < CacheCapacity) _cache.TryAdd(word, ids);
        }
        output.AddRange(ids);
    }

    int[] Compute(string word)
    {
        if (_options.IgnoreMerges && _vocab.TryGetValue(word, out var whole)) return [whole];
        var symbols = InitialSymbols(word);
        return symbols.Count < 2 ? symbols.ToArray() : MergeAll(symbols);
    }

    /// One symbol per code point, as tokenizers' BPE::merge_word builds them.
    List<int> InitialSymbols(string word)
    {
        var symbols = new List<int>(word.Length);
        int? pendingUnk = null;
        var runes = word.EnumerateRunes().ToArray();
        for (var i = 0; i < runes.Length; i++)
        {
            var text = runes[i].ToString();
            if (i > 0 && _options.ContinuingSubwordPrefix is { } prefix) text = prefix + text;
            if (i == runes.Length - 1 && _options.EndOfWordSuffix is { } suffix) text += suffix;
            if (_vocab.TryGetValue(text, out var id))
            {
                if (pendingUnk is { } unk) symbols.Add(unk);
                pendingUnk = null;
                symbols.Add(id);
            }
            else if (!TryAddByteFallback(text, symbols) && _options.UnkToken is { } unkToken)
            {
                // fuse_unk: consecutive unknown characters become one unk symbol.
                if (pendingUnk is { } unk && !_options.FuseUnk) symbols.Add(unk);
                pendingUnk = IdOf(_vocab, unkToken);
            }
        }
        if (pendingUnk is { } last) symbols.Add(last);
        return symbols;
    }

    bool TryAddByteFallback(string text, List<int> symbols)
    {
        if (!_options.ByteFallback) return false;
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
            if (!_vocab.TryGetValue(string.Create(CultureInfo.InvariantCulture, $"<0x{bytes[i]:X2}>"), out ids[i])) return false;
        symbols.AddRange(ids);
        return true;
    }

    /// Applies merges lowest rank first (leftmost on ties). Symbols live in a linked list over their initial
    /// positions; queue entries that no longer describe the current pair are skipped when they come up.
    int[] MergeAll(List<int> initial)
    {
        var n = initial.Count;
        var ids = initial.ToArray();
        var next = Enumerable.Range(1, n).ToArray();      // n marks the end
        var prev = Enumerable.Range(-1, n).ToArray();     // -1 marks the start
        var queue = new PriorityQueue<(int Pos, int Left, int Right), (int Rank, int Pos)>();
        void Consider(int pos)
        {
            if (pos >= 0 && next[pos] < n && _merges.TryGetValue((ids[pos], ids[next[pos]]), out var merge))
                queue.Enqueue((pos, ids[pos], ids[next[pos]]), (merge.Rank, pos));
        }
        for (var i = 0; i < n - 1; i++) Consider(i);
        while (queue.TryDequeue(out var candidate, out _))
        {
            var (pos, left, right) = candidate;
            var after = next[pos];
            if (prev[pos] == int.MinValue || after >= n || ids[pos] != left || ids[after] != right) continue;
            ids[pos] = _merges[(left, right)].Merged;
            next[pos] = next[after];
            if (next[after] < n) prev[next[after]] = pos;
            prev[after] = int.MinValue;                  // removed
            Consider(prev[pos]);
            Consider(pos);
        }
        var result = new List<int>();
        for (var pos = 0; pos < n; pos = next[pos]) result.Add(ids[pos]);
        return result.ToArray();
    }
}

/// The switches of a BPE model object in tokenizer.json.
internal sealed record BpeOptions(bool ByteFallback, bool IgnoreMerges, string? UnkToken, bool FuseUnk, string? ContinuingSubwordPrefix, string? EndOfWordSuffix)
{
    public static BpeOptions FromJson(JsonElement model) => new(
        PreTokenizers.Bool(model, "byte_fallback", false),
        PreTokenizers.Bool(model, "ignore_merges", false),
        OptionalString(model, "unk_token"),
        PreTokenizers.Bool(model, "fuse_unk", false),
        OptionalString(model, "continuing_subword_prefix"),
        OptionalString(model, "end_of_word_suffix"));

    static string? OptionalString(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
