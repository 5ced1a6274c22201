using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// A step's forward metadata on the device, uploaded as ONE int32 tensor (one host-to-device copy per step,
/// not per layer) and read by the kernels through views:
///
///   [ tokenIds (N) | positions (N) | slots (N) | contextLengths (S) | blockTables (S, maxBlocks) | contextSlots ]
///
/// N = tokens in the flat batch, S = sequences. contextSlots (sum of context lengths) lists every cached
/// token's pool slot, sequence after sequence; only prefill steps carry it (decode reads the block tables).
internal sealed class FusedStepInputs : IDisposable
{
    private readonly Tensor _packed;

    private FusedStepInputs(Tensor packed, int[] queryLengths, int[] contextLengths, int maxBlocks, bool withContextSlots)
    {
        _packed = packed;
        QueryLengths = queryLengths;
        HostContextLengths = contextLengths;
        NumSeqs = queryLengths.Length;
        NumTokens = queryLengths.Sum();
        IsDecode = queryLengths.All(l => l == 1);
        TokenIds = packed.narrow(0, 0, NumTokens);
        Positions = packed.narrow(0, NumTokens, NumTokens);
        Slots = packed.narrow(0, 2 * NumTokens, NumTokens);
        ContextLengths = packed.narrow(0, 3 * NumTokens, NumSeqs);
        var tablesStart = 3 * NumTokens + NumSeqs;
        BlockTables = packed.narrow(0, tablesStart, NumSeqs * maxBlocks).view(NumSeqs, maxBlocks);
        ContextSlots = withContextSlots ? packed.narrow(0, tablesStart + NumSeqs * maxBlocks, contextLengths.Sum()) : null;
    }

    public int NumTokens { get; }
    public int NumSeqs { get; }
    /// Every sequence contributes exactly one query token: the paged decode kernel applies.
    public bool IsDecode { get; }
    public int[] QueryLengths { get; }
    public int[] HostContextLengths { get; }
    public Tensor TokenIds { get; }        // (N)
    public Tensor Positions { get; }       // (N)
    public Tensor Slots { get; }           // (N), the pool slot each token's K/V is written to
    public Tensor ContextLengths { get; }  // (S), cached tokens including this step's
    public Tensor BlockTables { get; }     // (S, maxBlocks), unused entries 0
    public Tensor? ContextSlots { get; }   // (sum of context lengths), prefill steps only

    public static FusedStepInputs Upload(BatchInputs batch, int blockSize, Device device)
    {
        var (tokenIds, positions, queryLengths) = (batch.TokenIds, batch.Positions, batch.QueryLengths);
        var (contextLengths, slotMapping, blockTables) = (batch.ContextLengths, batch.SlotMapping, batch.BlockTables);
        var maxBlocks = Math.Max(1, blockTables.Max(t => t.Length));
        var withContextSlots = queryLengths.Any(l => l != 1);
        var host = new List<int>(3 * tokenIds.Length + contextLengths.Length * (1 + maxBlocks));
        host.AddRange(tokenIds);
        host.AddRange(positions);
        host.AddRange(slotMapping);
        host.AddRange(contextLengths);
        foreach (var table in blockTables)
        {
            host.AddRange(table);
            host.AddRange(new int[maxBlocks - table.Length]);
        }

        if (withContextSlots)
        {
            AppendContextSlots(host, contextLengths, blockTables, blockSize);
        }

        var packed = tensor(host.ToArray(), dtype: ScalarType.Int32, device: device);
        return new FusedStepInputs(packed, queryLengths, contextLengths, maxBlocks, withContextSlots);
    }

    public void Dispose()
    {
        foreach (var view in new[] { TokenIds, Positions, Slots, ContextLengths, BlockTables, ContextSlots })
        {
            view?.Dispose();
        }

        _packed.Dispose();
    }

    // slot of token t = blockTable[t / blockSize] * blockSize + t % blockSize
    private static void AppendContextSlots(List<int> host, int[] contextLengths, int[][] blockTables, int blockSize)
    {
        for (var s = 0; s < contextLengths.Length; s++)
        {
            for (var t = 0; t < contextLengths[s]; t++)
            {
                host.Add(blockTables[s][t / blockSize] * blockSize + t % blockSize);
            }
        }
    }
}
