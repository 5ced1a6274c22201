using Serving.Engine.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// A step's metadata on the device, in buffers allocated once and overwritten in place each step: one int32 device
/// tensor with a fixed layout, filled from one pinned host tensor by ONE asynchronous copy. Fixed addresses and
/// strides are what lets a captured step (CUDA graph) read the next step's metadata.
///
///   [ tokenIds (T) | positions (T) | slots (T) | logitRows (S) | tokenRows (S) | decodeSeqs (S) | contextLengths (S)
///     | blockTables (S, W) ]
///
/// T tokens, S sequences, W blocks per sequence of capacity; a step larger than that grows the buffers (new
/// addresses: graphs captured before must be captured again). The copy covers the small arrays and the used rows of
/// the block tables.
internal sealed class DeviceStepBuffers : IDisposable
{
    Tensor _device = null!;   // (capacity) int32 on the GPU
    Tensor _host = null!;     // (capacity) int32, pinned
    int _tokens, _seqs, _width;

    public DeviceStepBuffers(int maxTokens, int maxSeqs, int maxBlocksPerSeq, Device device)
    {
        Device = device;
        Allocate(maxTokens, maxSeqs, maxBlocksPerSeq);
    }

    public Device Device { get; }
    public int MaxTokens => _tokens;
    public int MaxSeqs => _seqs;
    public int MaxBlocksPerSeq => _width;

    /// Makes room for steps of this size (growing never shrinks); true when the buffers moved.
    public bool Reserve(int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        if (maxTokens <= _tokens && maxSeqs <= _seqs && maxBlocksPerSeq <= _width) return false;
        _device.Dispose();
        _host.Dispose();
        Allocate(Math.Max(maxTokens, _tokens), Math.Max(maxSeqs, _seqs), Math.Max(maxBlocksPerSeq, _width));
        return true;
    }

    /// Writes the step's metadata into the pinned buffer and queues its copy to the device on the current stream.
    /// decodeSeqs: the sequences with one new token, in batch order.
    public unsafe void Upload(StepInputs inputs, IReadOnlyList<int> decodeSeqs)
    {
        Reserve(inputs.NumTokens, inputs.NumSeqs, inputs.MaxBlocksPerSeq);
        var host = new Span<int>((void*)TensorPointer.Of(_host), (int)_host.NumberOfElements);
        inputs.TokenIds.CopyTo(host[..]);
        inputs.Positions.CopyTo(host[_tokens..]);
        inputs.SlotMapping.CopyTo(host[(2 * _tokens)..]);
        var seqs = 3 * _tokens;
        inputs.LogitRows.CopyTo(host[seqs..]);
        for (var s = 0; s < inputs.NumSeqs; s++) host[seqs + _seqs + s] = inputs.LastRow(s);
        for (var i = 0; i < decodeSeqs.Count; i++) host[seqs + 2 * _seqs + i] = decodeSeqs[i];
        inputs.ContextLengths.CopyTo(host[(seqs + 3 * _seqs)..]);
        var tables = seqs + 4 * _seqs;
        for (var s = 0; s < inputs.NumSeqs; s++)
        {
            var row = host.Slice(tables + s * _width, _width);
            inputs.BlockTables[s].CopyTo(row);
            row[inputs.BlockTables[s].Length..].Clear();                     // unused entries: block 0, never read
        }
        var used = tables + inputs.NumSeqs * _width;
        using var source = _host.narrow(0, 0, used);
        using var target = _device.narrow(0, 0, used);
        target.copy_(source, true);                                       // non_blocking: pinned source, async on the stream
    }

    // views of the device buffer (fixed addresses), sized for a step of numTokens tokens and numSeqs sequences
    public Tensor TokenIds(int numTokens) => _device.narrow(0, 0, numTokens);
    public Tensor Positions(int numTokens) => _device.narrow(0, _tokens, numTokens);
    public Tensor Slots(int numTokens) => _device.narrow(0, 2 * _tokens, numTokens);
    public Tensor LogitRows(int numRows) => _device.narrow(0, 3 * _tokens, numRows);
    public Tensor TokenRows(int numSeqs) => _device.narrow(0, 3 * _tokens + _seqs, numSeqs);
    public Tensor DecodeSeqs(int numDecodes) => _device.narrow(0, 3 * _tokens + 2 * _seqs, numDecodes);
    public Tensor ContextLengths(int numSeqs) => _device.narrow(0, 3 * _tokens + 3 * _seqs, numSeqs);
    public Tensor BlockTables(int numSeqs) => _device.narrow(0, 3 * _tokens + 4 * _seqs, (long)_seqs * _width).view(_seqs, _width).narrow(0, 0, numSeqs);

    public void Dispose()
    {
        _device.Dispose();
        _host.Dispose();
    }

    void Allocate(int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        (_tokens, _seqs, _width) = (Math.Max(1, maxTokens), Math.Max(1, maxSeqs), Math.Max(1, maxBlocksPerSeq));
        var capacity = 3L * _tokens + 4L * _seqs + (long)_seqs * _width;
        _device = zeros(capacity, ScalarType.Int32, Device).DetachFromDisposeScope();
        var host = zeros(capacity, ScalarType.Int32);
        // pinned, so the copy is asynchronous on the stream (a CPU "device" has nothing to pin for)
        _host = (Device.type == TorchSharp.DeviceType.CUDA ? host.pin_memory() : host).DetachFromDisposeScope();
    }
}
