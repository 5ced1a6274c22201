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
    /// Each grammar state is first brought up to its sequence's output tokens (SyncTo).
    public static Task<AllowedTokens>? StartPreparing(IReadOnlyList<SamplingState> rows)
    {
        var constrained = Enumerable.Range(0, rows.Count).Where(i => rows[i].Grammar is not null).ToArray();
        if (constrained.Length == 0) return null;
        return Task.Run(() => Prepare(rows, constrained));
    }

    static AllowedTokens Prepare(IReadOnlyList<SamplingState> rows, int[] constrained)
    {
        var rowBytes = constrained.Select(i => rows[i].Grammar!.NumMaskBytes).First();
        var result = new AllowedTokens(new byte[rows.Count * rowBytes], rowBytes, rows.Count);
        var isConstrained = new bool[rows.Count];
        foreach (var row in constrained) isConstrained[row] = true;
        for (var row = 0; row < rows.Count; row++)
            if (!isConstrained[row]) result.RowBits(row).Fill(0xFF);
        var failed = new bool[rows.Count];
        void Write(int row)
        {
            var grammar = rows[row].Grammar!;
            if (grammar.SyncTo(rows[row].OutputTokenIds)) grammar.WriteMask(result.RowBits(row));
            else
            {
                failed[row] = true;
                result.RowBits(row).Fill(0xFF);
            }
        }
        if (constrained.Length < ParallelThreshold) foreach (var row in constrained) Write(row);
        else Parallel.ForEach(constrained, Write);
        result.FailedRows = Enumerable.Range(0, rows.Count).Where(i => failed[i]).ToArray();
        return result;
    }

    /// One row's mask alone (for sampling that row by itself).
    public AllowedTokens Row(int row) => new(Bits.AsSpan(row * RowBytes, RowBytes).ToArray(), RowBytes, 1);

    Span<byte> RowBits(int row) => Bits.AsSpan(row * RowBytes, RowBytes);
}
