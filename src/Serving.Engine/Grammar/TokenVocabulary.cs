using Serving.Engine.Tokenization;

namespace Serving.Engine.Grammar;

/// The model's vocabulary as a grammar sees it: each token's bytes (what it adds in the middle of a text,
/// through the tokenizer's own decoder, so byte-level BPE, SentencePiece "▁" and "<0xAB>" byte fallback all
/// come out as UTF-8 bytes), in a trie laid out in preorder so that a mask is one forward scan that skips
/// whole subtrees once a prefix is dead. Special tokens have no bytes: a grammar never allows them, except
/// the end-of-sequence ids once the grammar accepts. Immutable; one per engine.
internal sealed class TokenVocabulary
{
    readonly byte[]?[] _tokenBytes;
    // the trie, preorder; node 0 is the root (no byte)
    readonly byte[] _nodeByte;
    readonly int[] _nodeDepth;
    readonly int[] _subtreeEnd;   // first node after this node's subtree
    readonly int[] _tokensStart;  // tokens ending at node i: _tokens[_tokensStart[i] .. _tokensStart[i + 1])
    readonly int[] _tokens;

    TokenVocabulary(int size, byte[]?[] tokenBytes, IReadOnlyCollection<int> eosTokenIds)
    {
        Size = size;
        _tokenBytes = tokenBytes;
        EosTokenIds = eosTokenIds.Where(id => id >= 0 && id < size).Distinct().ToArray();
        (_nodeByte, _nodeDepth, _subtreeEnd, _tokensStart, _tokens) = BuildTrie(tokenBytes);
        MaxDepth = _nodeDepth.Max();
    }

    /// Mask width: the model's vocabulary (the logits' width), which may exceed the tokenizer's.
    public int Size { get; }

    public int NumMaskBytes => (Size + 7) / 8;

    public IReadOnlyList<int> EosTokenIds { get; }

    public int NumNodes => _nodeByte.Length;

    public int MaxDepth { get; }

    /// size: the logits' width; ids at or above it are never allowed.
    public static TokenVocabulary Create(TextTokenizer tokenizer, int size, IReadOnlyCollection<int> eosTokenIds)
    {
        var bytes = new byte[]?[Math.Min(size, tokenizer.VocabSize)];
        // the tokenizer is immutable: decode the vocabulary on every core (a 128k vocabulary is ~1 s on one)
        Parallel.For(0, bytes.Length, id => bytes[id] = tokenizer.TokenBytes(id) is { Length: > 0 } b ? b : null);
        return new TokenVocabulary(size, bytes, eosTokenIds);
    }

    /// Runs the grammar code paths once (compile a small schema, write its first mask) so that the first
    /// structured request pays for neither the JIT nor a cold start; its cost goes to engine start-up instead.
    public void WarmUp()
    {
        var automaton = GrammarCompiler.Compile(new StructuredOutputsParams
        {
            Json = """{"type": "object", "properties": {"a": {"type": "string", "pattern": "[a-z]+"}, "b": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "number"}]}}, "required": ["a"]}""",
        });
        var state = new GrammarState(automaton, this);
        state.WriteMask(new byte[NumMaskBytes]);
        state.SyncTo([]);
    }

    /// The bytes of a token, or null for a special (or empty, or out-of-range) token.
    public byte[]? Bytes(int tokenId) => tokenId >= 0 && tokenId < _tokenBytes.Length ? _tokenBytes[tokenId] : null;

    public bool IsEos(int tokenId) => EosTokenIds.Contains(tokenId);

    /// The mask of the tokens allowed in one configuration: every token whose bytes keep the automaton alive,
    /// and EOS when the configuration accepts. The caller holds the automaton's Gate.
    public byte[] ComputeMask(GrammarAutomaton automaton, int configuration)
    {
        var mask = new byte[NumMaskBytes];
        if (automaton.IsAccepting(configuration))
            foreach (var eos in EosTokenIds) Set(mask, eos);
        var at = new int[MaxDepth + 1];
        at[0] = configuration;
        for (var node = 1; node < _nodeByte.Length;)
        {
            var depth = _nodeDepth[node];
            var next = automaton.Step(at[depth - 1], _nodeByte[node]);
            if (next == GrammarAutomaton.Dead)
            {
                node = _subtreeEnd[node];
                continue;
            }
            at[depth] = next;
            for (var t = _tokensStart[node]; t < _tokensStart[node + 1]; t++) Set(mask, _tokens[t]);
            node++;
        }
        return mask;
    }

    /// The mask with only the EOS ids (after the grammar ended).
    public byte[] EosOnlyMask()
    {
        var mask = new byte[NumMaskBytes];
        foreach (var eos in EosTokenIds) Set(mask, eos);
        return mask;
    }

    static void Set(byte[] mask, int tokenId) => mask[tokenId >> 3] |= (byte)(1 << (tokenId & 7));

    static (byte[], int[], int[], int[], int[]) BuildTrie(byte[]?[] tokenBytes)
    {
        var ids = Enumerable.Range(0, tokenBytes.Length).Where(id => tokenBytes[id] is not null).ToArray();
        Array.Sort(ids, (a, b) => tokenBytes[a].AsSpan().SequenceCompareTo(tokenBytes[b]));
        var nodeByte = new List<byte> { 0 };
        var nodeDepth = new List<int> { 0 };
        var nodeTokens = new List<List<int>?> { null };
        var path = new List<int> { 0 }; // node at each depth of the current path
        byte[] previous = [];
        foreach (var id in ids)
        {
            var bytes = tokenBytes[id]!;
            var common = 0;
            while (common < bytes.Length && common < previous.Length && bytes[common] == previous[common]) common++;
            path.RemoveRange(common + 1, path.Count - common - 1);
            for (var depth = common + 1; depth <= bytes.Length; depth++)
            {
                nodeByte.Add(bytes[depth - 1]);
                nodeDepth.Add(depth);
                nodeTokens.Add(null);
                path.Add(nodeByte.Count - 1);
            }
            (nodeTokens[path[bytes.Length]] ??= []).Add(id);
            previous = bytes;
        }
        var count = nodeByte.Count;
        var subtreeEnd = new int[count];
        var open = new Stack<int>();
        for (var node = 0; node < count; node++)
        {
            while (open.Count > 0 && nodeDepth[open.Peek()] >= nodeDepth[node]) subtreeEnd[open.Pop()] = node;
            open.Push(node);
        }
        while (open.Count > 0) subtreeEnd[open.Pop()] = count;
        var tokensStart = new int[count + 1];
        var tokens = new List<int>();
        for (var node = 0; node < count; node++)
        {
            tokensStart[node] = tokens.Count;
            if (nodeTokens[node] is { } list) tokens.AddRange(list);
        }
        tokensStart[count] = tokens.Count;
        return ([.. nodeByte], [.. nodeDepth], subtreeEnd, tokensStart, [.. tokens]);
    }
}
