using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Distributed;

/// The ranks of one tensor-parallel model in this process: each rank's device and communicator. On CUDA rank r runs on
/// GPU first + r (first: the --device index) and the ranks talk through NCCL (ncclCommInitAll); on CPU every rank
/// runs on the CPU and they talk through an InProcessGroup. Owns the communicators.
internal sealed class TensorParallelGroup : IDisposable
{
    readonly InProcessGroup? _inProcess;

    TensorParallelGroup(IReadOnlyList<Device> devices, IReadOnlyList<ICommunicator> communicators, InProcessGroup? inProcess) =>
        (Devices, Communicators, _inProcess) = (devices, communicators, inProcess);

    /// Rank r's device, in rank order.
    public IReadOnlyList<Device> Devices { get; }
    /// Rank r's communicator, in rank order; each is used by its rank's thread only.
    public IReadOnlyList<ICommunicator> Communicators { get; }

    /// The device of each of size ranks for a model asked to run on device (no communicator made): what the memory
    /// profiler measures before loading. A CUDA group that needs more GPUs than are visible fails naming both numbers.
    public static IReadOnlyList<Device> DevicesFor(Device device, int size)
    {
        if (device.type != DeviceType.CUDA) return Enumerable.Repeat(device, size).ToArray();
        var first = Math.Max(0, (int)device.index);
        var visible = cuda.device_count();
        if (first + size > visible)
            throw new ModelLoadException(
                $"--tensor-parallel-size {size} needs {size} GPUs from cuda:{first} on, but {visible} are visible");
        return Enumerable.Range(first, size).Select(ordinal => new Device(DeviceType.CUDA, ordinal)).ToArray();
    }

    public static TensorParallelGroup Create(Device device, int size)
    {
        var devices = DevicesFor(device, size);
        if (device.type == DeviceType.CUDA)
            return new TensorParallelGroup(devices, NcclCommunicator.CreateAll(devices.Select(d => (int)d.index).ToArray()), null);
        var group = new InProcessGroup(size);
        return new TensorParallelGroup(devices, group.Ranks, group);
    }

    /// A rank failed in the middle of a step: no rank may wait for it in a collective.
    public void Abort()
    {
        foreach (var communicator in Communicators) communicator.Abort();
    }

    /// After an abort, once every rank has left the step: the group is made usable again (fresh barriers, or fresh
    /// NCCL communicators). Where that fails the group stays aborted and the next step says so.
    public void Recover()
    {
        if (_inProcess is not null) _inProcess.Recover();
        else NcclCommunicator.Recover(Communicators.Cast<NcclCommunicator>().ToArray());
    }

    public void Dispose()
    {
        foreach (var communicator in Communicators) communicator.Dispose();
        _inProcess?.Dispose();
    }
}
