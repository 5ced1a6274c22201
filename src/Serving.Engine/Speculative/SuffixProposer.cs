namespace Serving.Engine.Speculative;

/// Suffix decoding (Oliaro et al. 2024; vLLM's "suffix" method): a draft continues the sequence's latest tokens as
/// they were continued where they occurred before, in the sequence's own prompt and output and in the outputs of
/// earlier requests (the last SuffixMaxCachedRequests, first in, first out): token by token the most frequent
/// continuation, while its estimated probability (the share of those places that continue with it, multiplied along
/// the draft) stays at least SuffixMinTokenProb. A longer match allows a longer draft: at most SuffixMaxSpecFactor x
/// the match, and match plus draft at most SuffixMaxTreeDepth tokens. Of the two sources the draft with the higher
/// score (the sum of its tokens' probabilities) is taken, on a tie the one of the longer match. Answers are drawn on
/// only by sequences of their salt (LoRA adapter and cache salt, as the prefix cache keeps them apart), so a tenant's
/// drafts, and so its speed, tell nothing of another's answers.
///
/// Where the reference keeps suffix trees, this keeps the texts and, for earlier outputs, an index of where each pair
/// of consecutive tokens occurs (the sequence's own tokens are searched, as prompt lookup does): a match is the set of
/// places whose preceding tokens agree longest with the sequence's, and what follows them is the tree's children. At
/// most MaxPlaces of the latest places are weighed, which bounds a step's host work; a draft decides only how fast an
/// answer comes, never what it is (DraftVerification keeps the tokens the model itself samples).
internal sealed class SuffixProposer(SpeculativeConfig config) : DraftProposer
{
    /// The most places (latest first) a match weighs, per source.
    const int MaxPlaces = 256;

    readonly Dictionary<int, (string Salt, int[] Tokens)> _outputs = [];          // by id; ids rise, the oldest goes first
    readonly Dictionary<(string Salt, long Pair), List<(int Output, int End)>> _pairs = [];  // where b follows a, in id order
    int _oldest, _next;

    /// Outputs of earlier requests held now.
    public int NumCachedOutputs => _outputs.Count;

    public override int[] Propose(ReadOnlySpan<int> tokens, string? salt, int maxTokens)
    {
        if (maxTokens <= 0 || tokens.Length < 3) return [];
        var depth = config.SuffixMaxTreeDepth;
        var context = tokens[Math.Max(0, tokens.Length - depth)..];
        var own = Draft(tokens, OwnPlaces(tokens, context), maxTokens);
        var earlier = Draft(tokens, EarlierPlaces(context, salt ?? ""), maxTokens);
        return ((earlier.Score, earlier.Matched).CompareTo((own.Score, own.Matched)) > 0 ? earlier : own).Tokens;
    }

    /// Keeps a finished request's output for later requests (none when SuffixMaxCachedRequests is 0).
    public override void Finished(ReadOnlySpan<int> output, string? salt)
    {
        if (config.SuffixMaxCachedRequests == 0 || output.Length < 2) return;
        var id = _next++;
        _outputs[id] = (salt ?? "", output.ToArray());
        for (var end = 1; end < output.Length; end++)
        {
            var key = (salt ?? "", Pair(output[end - 1], output[end]));
            if (!_pairs.TryGetValue(key, out var places)) _pairs[key] = places = [];
            places.Add((id, end));
        }
        while (_outputs.Count > config.SuffixMaxCachedRequests) Evict();
    }

    // the oldest output leaves; its places lead their lists (ids rise)
    void Evict()
    {
        while (!_outputs.ContainsKey(_oldest)) _oldest++;
        var (salt, text) = _outputs[_oldest];
        _outputs.Remove(_oldest);
        for (var end = 1; end < text.Length; end++)
        {
            var key = (salt, Pair(text[end - 1], text[end]));
            if (!_pairs.TryGetValue(key, out var places)) continue;
            var gone = 0;
            while (gone < places.Count && places[gone].Output == _oldest) gone++;
            places.RemoveRange(0, gone);
            if (places.Count == 0) _pairs.Remove(key);
        }
        _oldest++;
    }

    static long Pair(int a, int b) => ((long)a << 32) | (uint)b;

    // Places (End: where the context's last token stands) in the sequence's own tokens before its last one, latest first.
    static List<Place> OwnPlaces(ReadOnlySpan<int> tokens, ReadOnlySpan<int> context)
    {
        var places = new List<Place>();
        var (last, before) = (context[^1], context[^2]);
        for (var end = tokens[..^1].LastIndexOf(last); end >= 1 && places.Count < MaxPlaces; end = tokens[..end].LastIndexOf(last))
            if (tokens[end - 1] == before)
                places.Add(new Place(null, end, Matched(tokens, end, context)));
        return places;
    }

    // Places in earlier outputs, latest first.
    List<Place> EarlierPlaces(ReadOnlySpan<int> context, string salt)
    {
        var places = new List<Place>();
        if (!_pairs.TryGetValue((salt, Pair(context[^2], context[^1])), out var found)) return places;
        for (var i = found.Count - 1; i >= 0 && places.Count < MaxPlaces; i--)
        {
            var (output, end) = found[i];
            var text = _outputs[output].Tokens;
            places.Add(new Place(text, end, Matched(text, end, context)));
        }
        return places;
    }

    /// How many of the context's last tokens agree with the tokens that end at `end` of text (at least the pair).
    static int Matched(ReadOnlySpan<int> text, int end, ReadOnlySpan<int> context)
    {
        var length = 2;
        while (length < context.Length && end - length >= 0 && text[end - length] == context[^(length + 1)]) length++;
        return length;
    }

    /// A place where the context's latest tokens occurred: in an earlier output (Text) or the sequence's own tokens (null).
    readonly record struct Place(int[]? Text, int End, int Matched);

    readonly record struct Proposal(int[] Tokens, double Score, int Matched);

    // The match's places continued token by token by the most frequent next token (the latest place's among equals)
    // while the draft's estimated probability holds. Two matches are tried: the longest, and where that leaves the
    // depth little room, the one of depth / (1 + factor) tokens (the longest draft the depth and factor allow, as
    // the reference tries its pattern's shorter suffixes too); the higher score wins.
    Proposal Draft(ReadOnlySpan<int> own, List<Place> places, int maxTokens)
    {
        if (places.Count == 0) return new([], 0, 0);
        var longest = places.Max(p => p.Matched);
        var roomiest = Math.Max(2, Math.Min(longest, (int)(config.SuffixMaxTreeDepth / (1 + config.SuffixMaxSpecFactor))));
        var best = Walk(own, places, longest, maxTokens);
        if (roomiest < longest && Walk(own, places, roomiest, maxTokens) is var shorter && shorter.Score > best.Score) best = shorter;
        return best;
    }

    // The draft from the places that match at least `matched` tokens.
    Proposal Walk(ReadOnlySpan<int> own, List<Place> places, int matched, int maxTokens)
    {
        var limit = Math.Min(maxTokens, Math.Min((int)Math.Floor(config.SuffixMaxSpecFactor * matched), config.SuffixMaxTreeDepth - matched));
        var alive = places.Where(p => p.Matched >= matched).ToList();
        var (draft, probability, score) = (new List<int>(), 1.0, 0.0);
        var counts = new Dictionary<int, int>();
        for (var offset = 1; draft.Count < limit && alive.Count > 0; offset++)
        {
            counts.Clear();
            var most = 0;
            foreach (var place in alive)
                if (Next(own, place, offset) is var next and >= 0)
                    most = Math.Max(most, counts[next] = counts.GetValueOrDefault(next) + 1);
            if (most == 0) break;
            probability *= (double)most / alive.Count;   // places whose text ended count as continuing with nothing
            if (probability < config.SuffixMinTokenProb) break;
            var best = -1;
            foreach (var place in alive)   // the latest place's token among the most frequent
                if (Next(own, place, offset) is var next and >= 0 && counts[next] == most)
                {
                    best = next;
                    break;
                }
            draft.Add(best);
            score += probability;
            var kept = new List<Place>(most);
            foreach (var place in alive)
                if (Next(own, place, offset) == best) kept.Add(place);
            alive = kept;
        }
        return new([.. draft], score, matched);
    }

    // The token offset places after the place's end; -1 past its text's end (the sequence's own: its last token)
    static int Next(ReadOnlySpan<int> own, Place place, int offset)
    {
        var at = place.End + offset;
        if (place.Text is { } text) return at < text.Length ? text[at] : -1;
        return at < own.Length ? own[at] : -1;
    }
}
