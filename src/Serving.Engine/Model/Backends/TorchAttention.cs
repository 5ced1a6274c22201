using Serving.Engine.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The reference backend's paged attention, with one KV head per group of query heads. Query head h belongs to KV
/// head h / groupSize (as transformers' repeat_kv orders them); instead of repeating K/V per query head, the group's
/// queries are stacked, (kvHeads, groupSize * queryLength, headDim), against their single KV head, (kvHeads,
/// context, headDim): each KV head is read once per group.
///
/// Sequences attend in groups: the decode sequences (one new token each) form one group, padded to the longest
/// context; each prefill chunk is a group of its own. So no query is ever padded: a group is either (numSeqs, 1
/// query) or (1 sequence, queryLength queries). Query i of a chunk sits at position c - q + i and sees keys 0 .. that
/// position (causal over the whole context, earlier chunks and prefix-cache hits included). A sliding-window layer
/// (ModelConfig.LayerWindows: gemma, cohere2, gpt-oss, mistral, phi3, qwen's under use_sliding_window) sees only the window's last positions up to its own; gemma's attention scale and
/// soft-capping apply as transformers applies them (scale, then cap x tanh(scores / cap), then the mask); gpt-oss's
/// sinks join each softmax as a column without a value.
internal sealed class TorchAttention
{
    /// Sequences that attend together: Rows (decode groups) or the chunk starting at TokenStart; their block tables
    /// padded with block 0; Hidden (numSeqs, 1, 1, queryLength, numBlocks * blockSize) true where a key is not visible;
    /// HiddenInWindow the same for each window size of the model's sliding layers; Stale (numSeqs, 1, numBlocks * blockSize,
    /// 1) true at positions no query of the sequence sees (past its context), which hold whatever an earlier owner of the
    /// block left (NaN included: hidden scores weigh 0, and 0 x NaN would still be NaN, so their values are zeroed);
    /// StaleInWindow the same for each window, which also covers the positions before every query's window (their
    /// blocks may have gone back to the pool, KVCacheManager.ReleaseOutsideWindow).
    sealed record Group(Tensor? Rows, int TokenStart, int NumSeqs, int QueryLength, Tensor BlockTables, Tensor Hidden,
        IReadOnlyDictionary<int, Tensor> HiddenInWindow, Tensor Stale, IReadOnlyDictionary<int, Tensor> StaleInWindow);

    readonly int _numHeads, _numKVHeads, _headDim, _groupSize;
    // the attention scale and gemma2's cap as Scalars held by the step (HeldScalars says why)
    readonly Scalar _scale;
    readonly Scalar? _softcap;
    readonly List<Group> _groups = [];

    public TorchAttention(ModelConfig config, StepInputs inputs, Device device)
    {
        (_numHeads, _numKVHeads, _headDim) = (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim);
        _groupSize = _numHeads / _numKVHeads;
        _scale = config.SoftmaxScale.ToScalar();
        _softcap = config.AttentionSoftcap?.ToScalar();
        var windows = config.LayerWindows.OfType<int>().Distinct().ToArray();
        var decodes = new List<int>();
        for (var s = 0; s < inputs.NumSeqs; s++)
        {
            if (inputs.QueryLength(s) == 1) decodes.Add(s);
            else _groups.Add(PrefillGroup(inputs, s, windows, config.IsCausal, device));
        }
        if (decodes.Count > 0) _groups.Add(DecodeGroup(inputs, decodes, windows, device));
    }

    // q (numTokens, numHeads, headDim), pools (numBlocks, blockSize, numKVHeads, headDim) -> (numTokens, numHeads * headDim);
    // window: the layer's sliding window, null for full attention; sinks (numHeads): gpt-oss's, null for none
    public Tensor Forward(Tensor q, Tensor keyPool, Tensor valuePool, int? window = null, Tensor? sinks = null)
    {
        var output = q.new_empty(q.shape[0], _numHeads * _headDim);
        foreach (var group in _groups)
        {
            var (hidden, stale) = window is { } w ? (group.HiddenInWindow[w], group.StaleInWindow[w]) : (group.Hidden, group.Stale);
            if (group.Rows is { } rows)
                output.index_copy_(0, rows, Attend(q.index_select(0, rows).unsqueeze(1), keyPool, valuePool, group, hidden, stale, sinks));
            else
                output.narrow(0, group.TokenStart, group.QueryLength)
                    .copy_(Attend(q.narrow(0, group.TokenStart, group.QueryLength).unsqueeze(0), keyPool, valuePool, group, hidden, stale, sinks));
        }
        return output;
    }

    // q (S, Q, numHeads, headDim) -> (S * Q, numHeads * headDim)
    Tensor Attend(Tensor q, Tensor keyPool, Tensor valuePool, Group group, Tensor hidden, Tensor stale, Tensor? sinks)
    {
        var (s, queries) = (group.NumSeqs, group.QueryLength);
        var grouped = q.view(s, queries, _numKVHeads, _groupSize, _headDim)
            .permute(0, 2, 3, 1, 4).reshape(s, _numKVHeads, _groupSize * queries, _headDim);    // (S, kvHeads, G * Q, headDim)
        var keys = Gather(keyPool, group, q.dtype).permute(0, 2, 3, 1);                           // (S, kvHeads, headDim, ctx)
        var values = Gather(valuePool, group, q.dtype).permute(0, 2, 1, 3).masked_fill(stale, HeldScalars.Zero);   // (S, kvHeads, ctx, headDim)
        var scores = matmul(grouped, keys).mul_(_scale);                                          // (S, kvHeads, G * Q, ctx)
        if (_softcap is { } cap) scores = scores.div(cap).tanh_().mul_(cap);
        var context = scores.shape[3];
        // the causal mask is the same for every query head of a group: broadcast it over kvHeads and G. The fill value
        // is a held Scalar (HeldScalars: a temporary one was seen finalized mid-call, "toFloat: Expected false to be
        // true" under a drain's allocations)
        scores = scores.view(s, _numKVHeads, _groupSize, queries, context)
            .masked_fill(hidden, HeldScalars.MinusInfinity)
            .view(s, _numKVHeads, _groupSize * queries, context);
        var probabilities = (sinks is null ? scores.softmax(-1, ScalarType.Float32) : WithSinks(scores, sinks, s, queries))
            .to_type(q.dtype);                                                                   // softmax in float32
        var attended = matmul(probabilities, values);                                             // (S, kvHeads, G * Q, headDim)
        return attended.view(s, _numKVHeads, _groupSize, queries, _headDim)
            .permute(0, 3, 1, 2, 4).reshape(s * queries, _numKVHeads * _groupSize * _headDim);    // heads ordered kv * G + g
    }

    /// The softmax of each query head's scores with its sink's logit as one more column, that column dropped (gpt-oss):
    /// scores (S, kvHeads, G * Q, ctx), sinks (kvHeads * G) in query-head order -> (S, kvHeads, G * Q, ctx) float32.
    Tensor WithSinks(Tensor scores, Tensor sinks, long s, long queries)
    {
        var context = scores.shape[3];
        var sinkColumn = sinks.to_type(scores.dtype).view(1, _numKVHeads, _groupSize, 1, 1)
            .expand(s, _numKVHeads, _groupSize, queries, 1).reshape(s, _numKVHeads, _groupSize * queries, 1);
        return cat([scores, sinkColumn], -1).softmax(-1, ScalarType.Float32).narrow(-1, 0, context);
    }

    /// The blocks of each sequence's table, in order, in the model's dtype: context position p is row p of the result.
    // pool (numBlocks, blockSize, kvHeads, headDim) -> (S, numBlocks * blockSize, kvHeads, headDim)
    Tensor Gather(Tensor pool, Group group, ScalarType dtype) =>
        pool.index_select(0, group.BlockTables.view(-1)).view(group.NumSeqs, -1, _numKVHeads, _headDim).to_type(dtype);

    // causal false (is_causal: false): every query sees the whole prompt, which a step computes whole
    static Group PrefillGroup(StepInputs inputs, int s, int[] windows, bool causal, Device device)
    {
        var (q, c) = (inputs.QueryLength(s), inputs.ContextLengths[s]);
        var table = inputs.BlockTables[s];
        var blocks = tensor(table.Select(b => (long)b).ToArray(), device: device).view(1, table.Length);
        var positions = HeldScalars.Range(c - q, c, device: device);               // (q)
        var lastVisible = causal ? positions : tensor(c - 1L, device: device).expand(q);   // bidirectional: the whole prompt
        var keyPositions = HeldScalars.Range(0, table.Length * inputs.BlockSize, device: device); // (numBlocks * blockSize)
        var (hidden, inWindow) = Masks(keyPositions, positions, lastVisible, windows);   // (q, numBlocks * blockSize) each
        // a position no query sees: hidden from every query of the chunk
        return new Group(null, inputs.QueryStarts[s], 1, q, blocks, hidden.view(1, 1, 1, q, -1),
            inWindow.ToDictionary(pair => pair.Key, pair => pair.Value.view(1, 1, 1, q, -1)), hidden.all(0).view(1, 1, -1, 1),
            inWindow.ToDictionary(pair => pair.Key, pair => pair.Value.all(0).view(1, 1, -1, 1)));
    }

    // keys after each row's last visible position are hidden (its own position, causal); in a window w also those w or
    // more positions away from the row's own (before it, or after it when the prompt attends both ways: gemma3's
    // bidirectional window, |query - key| < w)
    // keyPositions (keys), positions and lastVisible (rows) -> (rows, keys) bool each
    static (Tensor Causal, Dictionary<int, Tensor> InWindow) Masks(Tensor keyPositions, Tensor positions, Tensor lastVisible, int[] windows)
    {
        var (keys, queries) = (keyPositions.unsqueeze(0), positions.unsqueeze(1));
        var causal = keys > lastVisible.unsqueeze(1);
        var distance = (keys - queries).abs();
        return (causal, windows.ToDictionary(w => w, w =>
        {
            using var window = w.ToScalar();   // held through the native call (HeldScalars says why)
            return causal.logical_or(distance >= window);
        }));
    }

    static Group DecodeGroup(StepInputs inputs, List<int> seqs, int[] windows, Device device)
    {
        var numBlocks = seqs.Max(s => inputs.BlockTables[s].Length);
        var table = new long[seqs.Count * numBlocks];                             // padding: block 0
        for (var i = 0; i < seqs.Count; i++)
            for (var b = 0; b < inputs.BlockTables[seqs[i]].Length; b++)
                table[i * numBlocks + b] = inputs.BlockTables[seqs[i]][b];
        var lastVisible = tensor(seqs.Select(s => (long)inputs.ContextLengths[s] - 1).ToArray(), device: device);  // (numSeqs)
        var keyPositions = HeldScalars.Range(0, numBlocks * inputs.BlockSize, device: device);
        var (hidden, inWindow) = Masks(keyPositions, lastVisible, lastVisible, windows);   // (numSeqs, numBlocks * blockSize) each
        var rows = tensor(seqs.Select(s => (long)inputs.LastRow(s)).ToArray(), device: device);
        // one query per sequence: what it does not see, no query sees
        return new Group(rows, 0, seqs.Count, 1, tensor(table, device: device).view(seqs.Count, numBlocks), hidden.view(seqs.Count, 1, 1, 1, -1),
            inWindow.ToDictionary(pair => pair.Key, pair => pair.Value.view(seqs.Count, 1, 1, 1, -1)), hidden.view(seqs.Count, 1, -1, 1),
            inWindow.ToDictionary(pair => pair.Key, pair => pair.Value.view(seqs.Count, 1, -1, 1)));
    }
}
