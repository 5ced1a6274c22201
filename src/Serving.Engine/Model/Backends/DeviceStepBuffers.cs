using Serving.Engine.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// A step's metadata on the device, in buffers allocated once and overwritten in place each step: one int32 device
/// tensor with a fixed layout, filled from one pinned host tensor by ONE asynchronous copy. Fixed addresses and
/// strides are what lets a captured step (CUDA graph) read the next step's metadata.
///
///   [ tokenIds (T) | positions (T) | slots (T) | logitRows (T) | tokenRows (S) | decodeSeqs (S) | contextLengths (S)
///     | partitionSize (1) | blockTables (S, W) ]
///
/// T tokens, S sequences, W blocks per sequence of capacity (logit rows are as many as tokens at most: a sequence
/// checking drafts has a row per token); a step larger than that grows the buffers (new
/// addresses: graphs captured before must be captured again). The copy covers the small arrays and the used rows of
/// the block tables. A decode step can be padded to more sequences (a captured graph's batch size): a padding
/// sequence has token 0 at position 0, slot -1 (its K/V are written nowhere) and a context of one token.
/// The pinned buffer is written again only once the previous step's copy has run (an event recorded after it): a
/// caller that queues steps back to back without reading anything (chunked prefill of one prompt) would otherwise
/// overwrite metadata the GPU has not copied yet.
internal sealed class DeviceStepBuffers : IDisposable
{
    Tensor _device = null!;   // (capacity) int32 on the GPU
    Tensor _host = null!;     // (capacity) int32, pinned
    readonly IntPtr _copied;  // CUDA event recorded after the last copy (zero on a CPU "device"); done until recorded
    int _tokens, _seqs, _width;

    public DeviceStepBuffers(int maxTokens, int maxSeqs, int maxBlocksPerSeq, Device device)
    {
        Device = device;
        Allocate(maxTokens, maxSeqs, maxBlocksPerSeq);
        if (device.type == DeviceType.CUDA) _copied = CudaDriver.CreateEvent();
    }

    public Device Device { get; }
    /// Counts reallocations: what a step captured under one generation reads is gone after the next.
    public int Generation { get; private set; }
    public int MaxTokens => _tokens;
    public int MaxBlocksPerSeq => _width;

    /// Makes room for steps of this size (growing never shrinks); true when the buffers moved.
    public bool Reserve(int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        if (maxTokens <= _tokens && maxSeqs <= _seqs && maxBlocksPerSeq <= _width) return false;
        WaitForLastCopy();
        _device.Dispose();
        _host.Dispose();
        Allocate(Math.Max(maxTokens, _tokens), Math.Max(maxSeqs, _seqs), Math.Max(maxBlocksPerSeq, _width));
        return true;
    }

    /// Writes the step's metadata into the pinned buffer and queues its copy to the device on the current stream.
    /// decodeSeqs: the sequences with one new token, in batch order; partitionSize: the decode attention's partition
    /// length; padTo: a decode step's sequence count after padding (0: none).
    public void Upload(StepInputs inputs, IReadOnlyList<int> decodeSeqs, int partitionSize, int padTo = 0)
    {
        if (padTo > inputs.NumSeqs && !inputs.IsDecode) throw new ArgumentException("only a decode step can be padded");
        Write(inputs, decodeSeqs, partitionSize, padTo);
    }

    /// A decode step of numSeqs padding sequences only: it computes, and writes no K/V anywhere.
    public void UploadPadding(int numSeqs, int partitionSize) => Write(null, [], partitionSize, numSeqs);

    unsafe void Write(StepInputs? inputs, IReadOnlyList<int> decodeSeqs, int partitionSize, int padTo)
    {
        var real = inputs?.NumSeqs ?? 0;
        var numSeqs = Math.Max(real, padTo);
        Reserve(Math.Max(inputs?.NumTokens ?? 0, padTo), numSeqs, inputs?.MaxBlocksPerSeq ?? 1);
        WaitForLastCopy();
        var host = new Span<int>((void*)TensorPointer.Of(_host), (int)_host.NumberOfElements);
        var tokens = host.Slice(0, _tokens);
        var positions = host.Slice(_tokens, _tokens);
        var slots = host.Slice(2 * _tokens, _tokens);
        var logitRows = host.Slice(3 * _tokens, _tokens);
        var seqs = 4 * _tokens;
        var tokenRows = host.Slice(seqs, _seqs);
        var decodes = host.Slice(seqs + _seqs, _seqs);
        var contexts = host.Slice(seqs + 2 * _seqs, _seqs);
        if (inputs is not null)
        {
            inputs.TokenIds.CopyTo(tokens);
            inputs.Positions.CopyTo(positions);
            inputs.SlotMapping.CopyTo(slots);
            inputs.LogitRows.CopyTo(logitRows);
            inputs.ContextLengths.CopyTo(contexts);
            for (var s = 0; s < real; s++) tokenRows[s] = inputs.LastRow(s);
        }
        for (var i = 0; i < decodeSeqs.Count; i++) decodes[i] = decodeSeqs[i];
        for (var s = real; s < numSeqs; s++)
        {
            tokens[s] = positions[s] = 0;
            slots[s] = -1;
            contexts[s] = 1;
            tokenRows[s] = logitRows[s] = s;
            decodes[decodeSeqs.Count + s - real] = s;
        }
        host[seqs + 3 * _seqs] = partitionSize;
        var tables = seqs + 3 * _seqs + 1;
        for (var s = 0; s < numSeqs; s++)
        {
            var row = host.Slice(tables + s * _width, _width);
            var table = s < real ? inputs!.BlockTables[s] : [];
            table.CopyTo(row);
            row[table.Length..].Clear();                                     // unused entries: block 0, never read
        }
        var used = tables + numSeqs * _width;
        using var source = _host.narrow(0, 0, used);
        using var target = _device.narrow(0, 0, used);
        target.copy_(source, true);                                       // non_blocking: pinned source, async on the stream
        if (_copied != IntPtr.Zero) CudaDriver.RecordEvent(_copied, TorchCudaStreams.Current(Device.index));
    }

    // an event never recorded counts as done, so the first step does not wait
    void WaitForLastCopy()
    {
        if (_copied != IntPtr.Zero) CudaDriver.SynchronizeEvent(_copied);
    }

    // views of the device buffer (fixed addresses), sized for a step of numTokens tokens and numSeqs sequences
    public Tensor TokenIds(int numTokens) => _device.narrow(0, 0, numTokens);
    public Tensor Positions(int numTokens) => _device.narrow(0, _tokens, numTokens);
    public Tensor Slots(int numTokens) => _device.narrow(0, 2 * _tokens, numTokens);
    public Tensor LogitRows(int numRows) => _device.narrow(0, 3 * _tokens, numRows);
    public Tensor TokenRows(int numSeqs) => _device.narrow(0, 4 * _tokens, numSeqs);
    public Tensor DecodeSeqs(int numDecodes) => _device.narrow(0, 4 * _tokens + _seqs, numDecodes);
    public Tensor ContextLengths(int numSeqs) => _device.narrow(0, 4 * _tokens + 2 * _seqs, numSeqs);
    public Tensor PartitionSize => _device.narrow(0, 4 * _tokens + 3 * _seqs, 1);
    public Tensor BlockTables(int numSeqs) => _device.narrow(0, 4 * _tokens + 3 * _seqs + 1, (long)_seqs * _width).view(_seqs, _width).narrow(0, 0, numSeqs);

    public void Dispose()
    {
        WaitForLastCopy();
        _device.Dispose();
        _host.Dispose();
        if (_copied != IntPtr.Zero) CudaDriver.DestroyEvent(_copied);
    }

    void Allocate(int maxTokens, int maxSeqs, int maxBlocksPerSeq)
    {
        (_tokens, _seqs, _width) = (Math.Max(1, maxTokens), Math.Max(1, maxSeqs), Math.Max(1, maxBlocksPerSeq));
        var capacity = 4L * _tokens + 3L * _seqs + 1 + (long)_seqs * _width;
        _device = zeros(capacity, ScalarType.Int32, Device).DetachFromDisposeScope();
        Generation++;
        var host = zeros(capacity, ScalarType.Int32);
        // pinned, so the copy is asynchronous on the stream (a CPU "device" has nothing to pin for)
        _host = (Device.type == TorchSharp.DeviceType.CUDA ? host.pin_memory() : host).DetachFromDisposeScope();
    }
}
