using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// The step metadata goes up as one int32 tensor; its views must hold exactly the BatchInputs fields.
/// The packing is device-independent, so it is checked on the CPU.
public sealed class FusedStepInputsTests
{
    // blockSize 4: sequence 0 decodes its 6th token (blocks 5, 2), sequence 1 prefills 3 tokens (block 9)
    static readonly BatchInputs Mixed = new([11, 12, 13, 14], [5, 0, 1, 2], [1, 3], [6, 3], [2 * 4 + 1, 36, 37, 38], [[5, 2], [9]]);

    [Fact]
    public void ViewsHoldEachFieldWithBlockTablesPadded()
    {
        using var inputs = FusedStepInputs.Upload(Mixed, blockSize: 4, CPU);
        Assert.Equal([11, 12, 13, 14], inputs.TokenIds.data<int>().ToArray());
        Assert.Equal([5, 0, 1, 2], inputs.Positions.data<int>().ToArray());
        Assert.Equal([9, 36, 37, 38], inputs.Slots.data<int>().ToArray());
        Assert.Equal([6, 3], inputs.ContextLengths.data<int>().ToArray());
        Assert.Equal(new long[] { 2, 2 }, inputs.BlockTables.shape);
        Assert.Equal([5, 2, 9, 0], inputs.BlockTables.contiguous().data<int>().ToArray());
        Assert.False(inputs.IsDecode);
    }

    [Fact]
    public void PrefillStepsListEveryContextSlotInOrder()
    {
        using var inputs = FusedStepInputs.Upload(Mixed, blockSize: 4, CPU);
        // sequence 0: positions 0..5 in blocks 5, 2; sequence 1: positions 0..2 in block 9
        Assert.Equal([20, 21, 22, 23, 8, 9, 36, 37, 38], inputs.ContextSlots!.data<int>().ToArray());
    }

    [Fact]
    public void DecodeStepsCarryNoContextSlots()
    {
        var decode = new BatchInputs([7, 8], [5, 2], [1, 1], [6, 3], [9, 38], [[5, 2], [9]]);
        using var inputs = FusedStepInputs.Upload(decode, blockSize: 4, CPU);
        Assert.True(inputs.IsDecode);
        Assert.Null(inputs.ContextSlots);
    }
}
