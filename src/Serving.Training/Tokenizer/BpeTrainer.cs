using System.Text.Json;
using Serving.Engine.Tokenization;
using Serving.Engine.Tokenization.HuggingFace;

namespace Serving.Training.Tokenizer;

/// Learns byte-level BPE merges from text (Sennrich et al., 2016, over GPT-2's byte alphabet): split the text
/// into words with the engine's own ByteLevel pre-tokenizer (the one the written tokenizer.json names), count
/// the words, start every word as its bytes, then repeatedly merge the most frequent adjacent pair of symbols
/// (ties: the pair whose merged string sorts first, ordinally) until the vocabulary is full. Pair counts are
/// kept up to date incrementally: a merge only rewrites the words that contain the pair.
internal sealed class BpeTrainer
{
    readonly IPreTokenizer _preTokenizer =
        PreTokenizers.FromJson(JsonDocument.Parse(TokenizerFiles.PreTokenizer().ToJsonString()).RootElement)!;
    readonly Dictionary<string, long> _wordCounts = new(StringComparer.Ordinal);
    readonly List<Piece> _pieces = [];

    /// Adds a text's words to the counts.
    public void Add(string text)
    {
        _pieces.Clear();
        _preTokenizer.PreTokenize(new Piece(text, AtStart: true), _pieces);
        foreach (var piece in _pieces)
            _wordCounts[piece.Text] = _wordCounts.GetValueOrDefault(piece.Text) + 1;
    }

    public int NumDistinctWords => _wordCounts.Count;

    /// The 256 byte symbols followed by the merged tokens, numRegular in all (fewer if the words run out of
    /// pairs), and the merges in rank order.
    public (List<string> Tokens, List<(string Left, string Right)> Merges) Train(int numRegular, int minPairCount = 2)
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.Of((byte)b).ToString()).ToList();
        var idOf = tokens.Select((token, id) => (token, id)).ToDictionary(t => t.token, t => t.id, StringComparer.Ordinal);
        var words = _wordCounts.Select(pair => new Word(pair.Key.Select(c => idOf[c.ToString()]).ToList(), pair.Value)).ToArray();
        var pairs = new PairCounts(words, tokens);
        var merges = new List<(string, string)>();
        while (tokens.Count < numRegular && pairs.TakeBest(minPairCount) is { } best)
        {
            var merged = tokens.Count;
            tokens.Add(tokens[best.Left] + tokens[best.Right]);
            merges.Add((tokens[best.Left], tokens[best.Right]));
            pairs.Merge(best, merged);
        }
        return (tokens, merges);
    }

    /// A distinct word: its symbols now, and how often it occurs.
    internal sealed record Word(List<int> Symbols, long Count);

    internal readonly record struct Pair(int Left, int Right);

    /// Counts of adjacent symbol pairs over all words, the words each pair occurs in, and a max-heap of counts
    /// whose stale entries (a count that has changed since it was pushed) are skipped when popped.
    sealed class PairCounts
    {
        readonly Word[] _words;
        readonly List<string> _tokens;
        readonly Dictionary<Pair, long> _counts = [];
        readonly Dictionary<Pair, HashSet<int>> _wordsWith = [];
        readonly PriorityQueue<Pair, (long Count, string Merged)> _heap;

        public PairCounts(Word[] words, List<string> tokens)
        {
            (_words, _tokens) = (words, tokens);
            _heap = new PriorityQueue<Pair, (long, string)>(Comparer<(long Count, string Merged)>.Create((a, b) =>
                a.Count != b.Count ? b.Count.CompareTo(a.Count) : string.CompareOrdinal(a.Merged, b.Merged)));
            for (var w = 0; w < words.Length; w++) Count(w, +1);
            foreach (var (pair, count) in _counts) Push(pair, count);
        }

        public Pair? TakeBest(int minCount)
        {
            while (_heap.TryDequeue(out var pair, out var priority))
            {
                if (_counts.GetValueOrDefault(pair) != priority.Count) continue;   // stale entry
                return priority.Count >= minCount ? pair : null;
            }
            return null;
        }

        /// Replaces every occurrence of pair (left to right, not overlapping) by the symbol merged.
        public void Merge(Pair pair, int merged)
        {
            var changed = new HashSet<Pair>();
            foreach (var w in _wordsWith[pair].ToArray())
            {
                Count(w, -1, changed);
                var symbols = _words[w].Symbols;
                for (var i = 0; i < symbols.Count - 1; i++)
                {
                    if (symbols[i] != pair.Left || symbols[i + 1] != pair.Right) continue;
                    symbols[i] = merged;
                    symbols.RemoveAt(i + 1);
                }
                Count(w, +1, changed);
            }
            foreach (var p in changed) Push(p, _counts.GetValueOrDefault(p));
        }

        // adds (sign +1) or removes (-1) the pairs of word w
        void Count(int w, int sign, HashSet<Pair>? changed = null)
        {
            var (symbols, count) = (_words[w].Symbols, _words[w].Count);
            for (var i = 0; i < symbols.Count - 1; i++)
            {
                var pair = new Pair(symbols[i], symbols[i + 1]);
                var total = _counts.GetValueOrDefault(pair) + sign * count;
                if (total == 0) _counts.Remove(pair);
                else _counts[pair] = total;
                if (sign > 0)
                {
                    if (!_wordsWith.TryGetValue(pair, out var set)) _wordsWith[pair] = set = [];
                    set.Add(w);
                }
                else if (_wordsWith.TryGetValue(pair, out var set)) set.Remove(w);
                changed?.Add(pair);
            }
        }

        void Push(Pair pair, long count)
        {
            if (count > 0) _heap.Enqueue(pair, (count, _tokens[pair.Left] + _tokens[pair.Right]));
        }
    }
}
