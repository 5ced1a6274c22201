using static TorchSharp.torch;

namespace Serving.Engine.Distributed;

/// The collectives of one rank of a tensor-parallel group (NCCL's communicator): every rank of the group calls the
/// same collectives in the same order with tensors of the same shape, each on its own thread. On CUDA a collective is
/// queued on the calling thread's current stream (the model's stream during a step), so it orders with the step's
/// kernels without a host synchronization and a CUDA graph can capture it.
internal interface ICommunicator : IDisposable
{
    int Rank { get; }
    int Size { get; }

    /// Sums x over the ranks, in place: every rank ends with the same values. x must be contiguous.
    void AllReduce(Tensor x);

    /// Every rank's input (the same shape on each) into output (Size, ...input's shape), in rank order.
    void AllGather(Tensor input, Tensor output);

    /// A rank failed in the middle of a step: makes the collectives other ranks wait in (and any later one) fail
    /// instead of waiting for it forever, until the group recovers (TensorParallelGroup.Recover).
    void Abort();
}
