using Serving.Engine.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Distributed;

/// One rank's NCCL communicator on one GPU. Collectives queue on libtorch's current stream of the calling thread for
/// that GPU (the model's stream while a step runs, see ../Cuda/CudaStream.cs), in place where NCCL allows it, so they
/// cost no host synchronization and a CUDA graph captures them with the step.
internal sealed class NcclCommunicator : ICommunicator
{
    IntPtr _comm;

    NcclCommunicator(IntPtr comm, int rank, int size, int device) => (_comm, Rank, Size, Device) = (comm, rank, size, device);

    public int Rank { get; }
    public int Size { get; }
    /// The CUDA device ordinal this rank runs on.
    public int Device { get; }

    /// A single-host group: rank i on GPU devices[i], from ncclCommInitAll.
    public static NcclCommunicator[] CreateAll(IReadOnlyList<int> devices) => Loaded(() =>
    {
        var comms = Nccl.CommInitAll(devices);
        return comms.Select((comm, rank) => new NcclCommunicator(comm, rank, comms.Length, devices[rank])).ToArray();
    });

    /// This process's ranks of a group that spans processes (one per node): ranks firstRank .. firstRank + devices - 1
    /// of size, on these GPUs, joined through the unique id rank 0 made (Nccl.GetUniqueId) and a rendezvous passed to
    /// every process (see deploy/README.md). Blocks until every rank of every process has joined.
    public static NcclCommunicator[] InitRanks(NcclUniqueId id, int size, int firstRank, IReadOnlyList<int> devices) => Loaded(() =>
    {
        var comms = new IntPtr[devices.Count];
        Nccl.GroupStart();
        try
        {
            for (var i = 0; i < devices.Count; i++)
            {
                CudaDevice.Open(devices[i]).MakeCurrent();    // ncclCommInitRank binds to the calling thread's device
                comms[i] = Nccl.CommInitRank(size, id, firstRank + i);
            }
        }
        finally
        {
            Nccl.GroupEnd();
        }
        return comms.Select((comm, i) => new NcclCommunicator(comm, firstRank + i, size, devices[i])).ToArray();
    });

    /// After an abort, once no rank is inside a collective any more: every rank of a single-host group gets a fresh
    /// communicator (ncclCommInitAll again); the objects, which the backends hold, stay the same.
    public static void Recover(IReadOnlyList<NcclCommunicator> ranks)
    {
        if (ranks.All(rank => rank._comm != IntPtr.Zero)) return;
        foreach (var rank in ranks) rank.Abort();
        var comms = Nccl.CommInitAll(ranks.Select(rank => rank.Device).ToArray());
        for (var i = 0; i < ranks.Count; i++) ranks[i]._comm = comms[i];
    }

    public void AllReduce(Tensor x)
    {
        var pointer = Pointer(x, nameof(x));
        Nccl.AllReduce(pointer, pointer, x.NumberOfElements, Nccl.DataType(x.dtype), Comm, TorchCudaStreams.Current(Device));
    }

    public void AllGather(Tensor input, Tensor output)
    {
        if (output.NumberOfElements != input.NumberOfElements * Size || output.dtype != input.dtype)
            throw new ArgumentException($"all-gather output must hold {Size} x {input.NumberOfElements} {input.dtype} values", nameof(output));
        Nccl.AllGather(Pointer(input, nameof(input)), Pointer(output, nameof(output)), input.NumberOfElements,
            Nccl.DataType(input.dtype), Comm, TorchCudaStreams.Current(Device));
    }

    /// May come from another rank's thread (the one that failed) while this rank waits in a collective.
    public void Abort()
    {
        var comm = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (comm != IntPtr.Zero) Nccl.CommAbort(comm);
    }

    public void Dispose()
    {
        var comm = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (comm != IntPtr.Zero) Nccl.CommDestroy(comm);
    }

    IntPtr Comm => _comm != IntPtr.Zero ? _comm
        : throw new TensorParallelAbortedException("the NCCL communicator was aborted after a rank failed; restart the engine");

    IntPtr Pointer(Tensor tensor, string name)
    {
        if (tensor.device_type != DeviceType.CUDA || tensor.device_index != Device)
            throw new ArgumentException($"{name} must be on cuda:{Device}, is on {tensor.device}", name);
        if (!tensor.is_contiguous())
            throw new ArgumentException($"{name} must be contiguous", name);
        return TensorPointer.Of(tensor);
    }

    // NCCL is loaded on first use: a missing library is a start-up error that says where to find it
    static T Loaded<T>(Func<T> create)
    {
        try
        {
            return create();
        }
        catch (TypeInitializationException error)
        {
            throw new ModelLoadException(
                $"NCCL could not be loaded ({error.InnerException?.Message}): put the folder of libnccl.so.2 (PyTorch's " +
                "site-packages/nvidia/nccl/lib) on LD_LIBRARY_PATH, or name the file in SERVING_NCCL_SO_PATH", error);
        }
    }
}
