using Serving.Engine.Sampling;

namespace Serving.Engine.Grammar;

/// The tokens each row of a step may sample, packed eight to a byte (token t of row r is bit t % 8 of
/// Bits[r * RowBytes + t / 8]); rows without a grammar allow everything. Prepared on worker threads while
/// the model runs (Prepare touches no tensors), applied by the Sampler as one masked_fill.
public sealed class AllowedTokens
{
    /// Below this many constrained rows the masks are written on one thread (a cached mask is a 16 KB copy).
    const int ParallelThreshold = 8;

    AllowedTokens(byte[] bits, int rowBytes, int numRows)
    {
        (Bits, RowBytes, NumRows) = (bits, rowBytes, numRows);
    }

    public byte[] Bits { get; }
    public int RowBytes { get; }
    public int NumRows { get; }

    /// Rows whose grammar state could not follow the sequence's tokens (a token the grammar refuses): the
    /// engine fails their requests. Their rows allow everything.
    public IReadOnlyList<int> FailedRows { get; private set; } = [];

    /// Starts preparing the masks of rows on the thread pool, or returns null when no row has a grammar.
    /// Each grammar state is first brought up to its sequence's output tokens (SyncTo). A sequence checking drafts
    /// (speculative decoding) has its own row, then a row per draft: the i-th a state after i drafts
    /// (SamplingState.AfterDrafts), sharing its grammar.
    public static Task<AllowedTokens>? StartPreparing(IReadOnlyList<SamplingState> rows)
    {
        // a sequence's rows: its own and the draft rows after it
        var groups = new List<(int First, int Count)>();
        for (var row = 0; row < rows.Count; row++)
        {
            if (rows[row].Drafts.Count > 0) continue;
            var count = 1;
            while (row + count < rows.Count && rows[row + count].Drafts.Count > 0) count++;
            if (rows[row].Grammar is not null) groups.Add((row, count));
        }
        if (groups.Count == 0) return null;
        return Task.Run(() => Prepare(rows, groups));
    }

    static AllowedTokens Prepare(IReadOnlyList<SamplingState> rows, List<(int First, int Count)> groups)
    {
        var rowBytes = rows[groups[0].First].Grammar!.NumMaskBytes;
        var result = new AllowedTokens(new byte[rows.Count * rowBytes], rowBytes, rows.Count);
        result.Bits.AsSpan().Fill(0xFF);   // rows without a grammar, and draft rows past a draft the grammar refuses
        var failed = new bool[rows.Count];
        // A draft row's mask is the grammar's after the drafts before it; a draft the grammar refuses cannot be kept
        // (the row before it masks it out), so the rows after it are never used. The state returns to the output.
        void Write((int First, int Count) group)
        {
            var grammar = rows[group.First].Grammar!;
            if (!grammar.SyncTo(rows[group.First].OutputTokenIds))
            {
                for (var row = group.First; row < group.First + group.Count; row++) failed[row] = true;
                return;
            }
            grammar.WriteMask(result.RowBits(group.First));
            var accepted = 0;
            for (var row = group.First + 1; row < group.First + group.Count && grammar.TryAccept(rows[row].Drafts[^1]); row++)
            {
                accepted++;
                grammar.WriteMask(result.RowBits(row));
            }
            grammar.Rollback(accepted);
        }
        if (groups.Count < ParallelThreshold) foreach (var group in groups) Write(group);
        else Parallel.ForEach(groups, Write);
        result.FailedRows = Enumerable.Range(0, rows.Count).Where(i => failed[i]).ToArray();
        return result;
    }

    /// One row's mask alone (for sampling that row by itself).
    public AllowedTokens Row(int row) => new(Bits.AsSpan(row * RowBytes, RowBytes).ToArray(), RowBytes, 1);

    Span<byte> RowBits(int row) => Bits.AsSpan(row * RowBytes, RowBytes);
}
