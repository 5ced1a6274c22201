using Serving.Engine.Model;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model.Backends;

/// The fused backend's step metadata goes up in one copy into buffers of fixed layout; its views must hold exactly
/// the step's fields, at addresses that do not move between steps that fit. The layout is device-independent, so
/// it is checked with a CPU "device".
public sealed class DeviceStepBuffersTests
{
    // blockSize 4: sequence 0 decodes its 6th token (blocks 5, 2), sequence 1 prefills 3 tokens (block 9)
    static readonly StepInputs Mixed = StepInputs.Build(
        [new StepSequence([1, 2, 3, 4, 5, 11], 5, 1, [5, 2]), new StepSequence([12, 13, 14], 0, 3, [9])], 4);

    [Fact]
    public void ViewsHoldEachFieldWithBlockTableRowsAtTheFixedWidth()
    {
        using var buffers = new DeviceStepBuffers(maxTokens: 8, maxSeqs: 4, maxBlocksPerSeq: 3, CPU);
        buffers.Upload(Mixed, decodeSeqs: [0], partitionSize: 64);
        Assert.Equal([11, 12, 13, 14], Ints(buffers.TokenIds(4)));
        Assert.Equal([5, 0, 1, 2], Ints(buffers.Positions(4)));
        Assert.Equal([9, 36, 37, 38], Ints(buffers.Slots(4)));
        Assert.Equal([0, 3], Ints(buffers.LogitRows(2)));
        Assert.Equal([0, 3], Ints(buffers.TokenRows(2)));
        Assert.Equal([0], Ints(buffers.DecodeSeqs(1)));
        Assert.Equal([6, 3], Ints(buffers.ContextLengths(2)));
        var tables = buffers.BlockTables(2);
        Assert.Equal(new long[] { 2, 3 }, tables.shape);
        Assert.Equal(3, tables.stride(0));
        Assert.Equal([5, 2, 0, 9, 0, 0], Ints(tables.contiguous()));
        Assert.Equal([64], Ints(buffers.PartitionSize));
    }

    /// A decode step padded to a captured graph's batch size: the padding sequences decode token 0 at position 0
    /// over one token of block 0, and their K/V slot is -1 (written nowhere).
    [Fact]
    public void PaddingSequencesWriteNothingAndAttendOverOneToken()
    {
        using var buffers = new DeviceStepBuffers(maxTokens: 8, maxSeqs: 4, maxBlocksPerSeq: 3, CPU);
        var decode = StepInputs.Build([new StepSequence([1, 2, 3, 4, 5, 11], 5, 1, [5, 2])], 4);
        buffers.Upload(decode, [0], partitionSize: 32, padTo: 3);
        Assert.Equal([11, 0, 0], Ints(buffers.TokenIds(3)));
        Assert.Equal([9, -1, -1], Ints(buffers.Slots(3)));
        Assert.Equal([6, 1, 1], Ints(buffers.ContextLengths(3)));
        Assert.Equal([0, 1, 2], Ints(buffers.TokenRows(3)));
        Assert.Equal([0, 1, 2], Ints(buffers.DecodeSeqs(3)));
        Assert.Equal([5, 2, 0, 0, 0, 0, 0, 0, 0], Ints(buffers.BlockTables(3).contiguous()));
        buffers.UploadPadding(numSeqs: 2, partitionSize: 32);
        Assert.Equal([-1, -1], Ints(buffers.Slots(2)));
        Assert.Throws<ArgumentException>(() => buffers.Upload(Mixed, [0], 32, padTo: 4));   // a prefill step is never padded
    }

    [Fact]
    public void GraphBatchSizesAreOneTwoFourThenStepsOfEight()
    {
        Assert.Equal([1, 2, 4, 8, 16, 24, 32], DecodeGraphs.Buckets(32));
        Assert.Equal([1, 2, 4, 8, 12], DecodeGraphs.Buckets(12));
        Assert.Equal([1, 2, 3], DecodeGraphs.Buckets(3));
        Assert.Equal(35, DecodeGraphs.Buckets(256).Count);
    }

    [Fact]
    public void StepsThatFitKeepTheAddressesAndLargerOnesGrowTheBuffers()
    {
        using var buffers = new DeviceStepBuffers(maxTokens: 8, maxSeqs: 4, maxBlocksPerSeq: 3, CPU);
        buffers.Upload(Mixed, [0], 64);
        var before = Serving.Engine.Cuda.TensorPointer.Of(buffers.BlockTables(2));
        Assert.False(buffers.Reserve(8, 4, 3));
        buffers.Upload(StepInputs.Build([new StepSequence([7], 0, 1, [1])], 4), [0], 64);
        Assert.Equal(before, Serving.Engine.Cuda.TensorPointer.Of(buffers.BlockTables(1)));
        Assert.Equal([7], Ints(buffers.TokenIds(1)));

        var long_ = StepInputs.Build([new StepSequence(Enumerable.Range(0, 20).ToArray(), 0, 20, [0, 1, 2, 3, 4])], 4);
        buffers.Upload(long_, [], 0);
        Assert.Equal((20, 5), (buffers.MaxTokens, buffers.MaxBlocksPerSeq));
        Assert.Equal(Enumerable.Range(0, 20).ToArray(), Ints(buffers.TokenIds(20)));
    }

    static int[] Ints(Tensor t) => t.data<int>().ToArray();
}
