using Serving.Engine.KVCache;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Support;

/// A minimal driver of a LoadedModel over a PagedKVCache for tests: sequences get blocks from a counter (handed
/// out in a scrambled order so that block tables are not contiguous), and each step computes the requested
/// number of each sequence's not-yet-computed tokens. The real scheduler and block pool live elsewhere.
public sealed class PagedRunner(LoadedModel model, PagedKVCache cache)
{
    sealed class Sequence
    {
        public List<int> Tokens { get; } = [];
        public List<int> Blocks { get; } = [];
        public int NumComputed { get; set; }
        public int Adapter { get; init; } = -1;
    }

    readonly List<Sequence> _sequences = [];
    int _blocksHandedOut;

    /// adapter: the index of the model's LoRA adapter the sequence runs with (-1: the base model).
    public int Add(IEnumerable<int> prompt, int adapter = -1)
    {
        var sequence = new Sequence { Adapter = adapter };
        sequence.Tokens.AddRange(prompt);
        _sequences.Add(sequence);
        return _sequences.Count - 1;
    }

    public IReadOnlyList<int> Tokens(int seq) => _sequences[seq].Tokens;
    public int Pending(int seq) => _sequences[seq].Tokens.Count - _sequences[seq].NumComputed;
    public void Append(int seq, int token) => _sequences[seq].Tokens.Add(token);

    /// One forward step; returns the float32 logits of each scheduled sequence's last new token (numSeqs, vocab).
    public float[][] Step(IReadOnlyList<(int Seq, int NumTokens)> work, bool allLogits = false)
    {
        var inputs = Build(work);
        using var scope = NewDisposeScope();
        var logits = allLogits ? model.ForwardAllLogits(inputs, cache) : model.Forward(inputs, cache);
        foreach (var (seq, n) in work) _sequences[seq].NumComputed += n;
        return Rows(logits);
    }

    /// Greedy generation of one sequence: prefill in chunks of chunkSize, then decode one token per step.
    public int[] Greedy(int seq, int numTokens, int chunkSize = int.MaxValue)
    {
        var generated = new List<int>();
        while (generated.Count < numTokens)
        {
            float[][] logits = [];
            while (Pending(seq) > 0) logits = Step([(seq, Math.Min(chunkSize, Pending(seq)))]);
            var next = ArgMax(logits[0]);
            generated.Add(next);
            Append(seq, next);
        }
        return [.. generated];
    }

    public static int ArgMax(float[] logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    StepInputs Build(IReadOnlyList<(int Seq, int NumTokens)> work)
    {
        var sequences = work.Select(w =>
        {
            var sequence = _sequences[w.Seq];
            EnsureBlocks(sequence, sequence.NumComputed + w.NumTokens);
            return new StepSequence(sequence.Tokens.ToArray(), sequence.NumComputed, w.NumTokens, sequence.Blocks.ToArray(), Adapter: sequence.Adapter);
        }).ToList();
        return StepInputs.Build(sequences, cache.BlockSize);
    }

    void EnsureBlocks(Sequence sequence, int numTokens)
    {
        while (sequence.Blocks.Count * cache.BlockSize < numTokens)
        {
            // a stride coprime with the pool size visits every block once, in a non-contiguous order
            var stride = cache.NumBlocks % 7 == 0 ? 1L : 7L;
            var block = (int)(_blocksHandedOut++ * stride % cache.NumBlocks);
            if (_blocksHandedOut > cache.NumBlocks) throw new InvalidOperationException("test pool exhausted");
            sequence.Blocks.Add(block);
        }
    }

    static float[][] Rows(Tensor logits)
    {
        var flat = logits.data<float>().ToArray();
        var (rows, vocab) = ((int)logits.shape[0], (int)logits.shape[1]);
        return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * vocab, vocab).ToArray()).ToArray();
    }
}
