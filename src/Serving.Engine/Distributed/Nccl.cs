using System.Runtime.InteropServices;
using Serving.Engine.Cuda;

namespace Serving.Engine.Distributed;

/// ncclUniqueId: the 128 opaque bytes that name a communicator; rank 0 makes it (ncclGetUniqueId) and every process
/// of a multi-node group receives it through a rendezvous before ncclCommInitRank.
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
internal unsafe struct NcclUniqueId
{
    public const int Bytes = 128;
    fixed byte _internal[Bytes];

    /// Base64 text of the id, for an environment variable or a rendezvous store.
    public override string ToString()
    {
        fixed (byte* data = _internal) return Convert.ToBase64String(new ReadOnlySpan<byte>(data, Bytes));
    }

    public static NcclUniqueId Parse(string base64)
    {
        var bytes = Convert.FromBase64String(base64);
        if (bytes.Length != Bytes) throw new FormatException($"an NCCL unique id is {Bytes} bytes, not {bytes.Length}");
        var id = new NcclUniqueId();
        bytes.CopyTo(new Span<byte>(id._internal, Bytes));
        return id;
    }
}

/// The NCCL C API entry points tensor parallelism needs (libnccl.so.2, which ships inside PyTorch's install as the
/// nvidia-nccl wheel), bound as unmanaged function pointers as ../Cuda/CudaDriver.cs binds the driver API. The library
/// is loaded on first use (SERVING_NCCL_SO_PATH names a file; else libnccl.so.2 from the loader's path, which libtorch
/// has usually loaded already). Every call's result goes through Check (NcclException with NCCL's own text).
internal static unsafe class Nccl
{
    public const int Sum = 0;                                  // ncclSum
    const int Success = 0;

    static readonly IntPtr Library = Load();

    static readonly delegate* unmanaged<int*, int> GetVersionFn = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
    static readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueIdFn = (delegate* unmanaged<NcclUniqueId*, int>)Export("ncclGetUniqueId");
    static readonly delegate* unmanaged<IntPtr*, int, int*, int> CommInitAllFn = (delegate* unmanaged<IntPtr*, int, int*, int>)Export("ncclCommInitAll");
    static readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> CommInitRankFn =
        (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Export("ncclCommInitRank");
    static readonly delegate* unmanaged<IntPtr, int> CommDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
    static readonly delegate* unmanaged<IntPtr, int> CommAbortFn = (delegate* unmanaged<IntPtr, int>)Export("ncclCommAbort");
    static readonly delegate* unmanaged<int> GroupStartFn = (delegate* unmanaged<int>)Export("ncclGroupStart");
    static readonly delegate* unmanaged<int> GroupEndFn = (delegate* unmanaged<int>)Export("ncclGroupEnd");
    static readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduceFn =
        (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
    static readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> AllGatherFn =
        (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Export("ncclAllGather");
    static readonly delegate* unmanaged<int, byte*> GetErrorStringFn = (delegate* unmanaged<int, byte*>)Export("ncclGetErrorString");

    /// NCCL's version as major.minor.patch (2.21.5 is 22105).
    public static string Version()
    {
        int code;
        Check(GetVersionFn(&code), "ncclGetVersion");
        return $"{code / 10000}.{code / 100 % 100}.{code % 100}";
    }

    public static NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id;
        Check(GetUniqueIdFn(&id), "ncclGetUniqueId");
        return id;
    }

    /// One communicator per device of this process, rank i on devices[i] (a single host).
    public static IntPtr[] CommInitAll(IReadOnlyList<int> devices)
    {
        var comms = new IntPtr[devices.Count];
        var list = devices.ToArray();
        fixed (IntPtr* commPtr = comms)
        fixed (int* devicePtr = list)
        {
            Check(CommInitAllFn(commPtr, list.Length, devicePtr), "ncclCommInitAll");
        }
        return comms;
    }

    /// Rank `rank` of `size` for the current CUDA device of the calling thread; blocks until every rank has joined
    /// (call it between GroupStart and GroupEnd when one thread initialises several ranks).
    public static IntPtr CommInitRank(int size, NcclUniqueId id, int rank)
    {
        IntPtr comm;
        Check(CommInitRankFn(&comm, size, id, rank), "ncclCommInitRank");
        return comm;
    }

    public static void GroupStart() => Check(GroupStartFn(), "ncclGroupStart");

    public static void GroupEnd() => Check(GroupEndFn(), "ncclGroupEnd");

    public static void AllReduce(IntPtr send, IntPtr receive, long count, int dataType, IntPtr comm, IntPtr stream) =>
        Check(AllReduceFn(send, receive, (nuint)count, dataType, Sum, comm, stream), "ncclAllReduce");

    public static void AllGather(IntPtr send, IntPtr receive, long sendCount, int dataType, IntPtr comm, IntPtr stream) =>
        Check(AllGatherFn(send, receive, (nuint)sendCount, dataType, comm, stream), "ncclAllGather");

    public static void CommDestroy(IntPtr comm) => Check(CommDestroyFn(comm), "ncclCommDestroy");

    public static void CommAbort(IntPtr comm) => Check(CommAbortFn(comm), "ncclCommAbort");

    /// ncclDataType_t of a tensor's element type.
    public static int DataType(TorchSharp.torch.ScalarType dtype) => dtype switch
    {
        TorchSharp.torch.ScalarType.Int8 => 0,
        TorchSharp.torch.ScalarType.Byte => 1,
        TorchSharp.torch.ScalarType.Int32 => 2,
        TorchSharp.torch.ScalarType.Int64 => 4,
        TorchSharp.torch.ScalarType.Float16 => 6,
        TorchSharp.torch.ScalarType.Float32 => 7,
        TorchSharp.torch.ScalarType.Float64 => 8,
        TorchSharp.torch.ScalarType.BFloat16 => 9,
        _ => throw new ArgumentException($"NCCL has no data type for {dtype}"),
    };

    static void Check(int result, string call)
    {
        if (result == Success) return;
        var text = GetErrorStringFn(result);
        throw new NcclException($"{call} failed with NCCL error {result}: {(text == null ? "unknown error" : Marshal.PtrToStringAnsi((IntPtr)text))}" +
            " (NCCL_DEBUG=WARN prints NCCL's own account)");
    }

    static IntPtr Load()
    {
        var path = Environment.GetEnvironmentVariable("SERVING_NCCL_SO_PATH");
        return string.IsNullOrEmpty(path)
            ? NativeLibraryLoader.LoadFirst("libnccl.so.2", "libnccl.so")
            : NativeLibraryLoader.LoadFirst(path);
    }

    static IntPtr Export(string name) => NativeLibraryLoader.Export(Library, name);
}

/// An NCCL call failed, or NCCL could not be loaded; the message carries the call and NCCL's error text.
public sealed class NcclException(string message) : Exception(message);
