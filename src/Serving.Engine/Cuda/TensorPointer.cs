using System.Runtime.InteropServices;
using TorchSharp;

namespace Serving.Engine.Cuda;

/// Device addresses of TorchSharp tensors, for passing them to kernels: the storage's base pointer plus
/// the tensor's storage offset in bytes. Views keep their strides, so kernels that take a row stride can
/// read a slice (such as the query part of a fused QKV output) without a copy.
internal static class TensorPointer
{
    public static IntPtr Of(torch.Tensor tensor) =>
        THSStorage_data_ptr(tensor.Handle) + (nint)(tensor.storage_offset() * tensor.ElementSize);

    /// As <see cref="Of"/>, after checking the tensor is on CUDA, of <paramref name="dtype"/>, and contiguous
    /// in its last dimension (kernels read rows with 16-byte vector loads).
    public static IntPtr Checked(torch.Tensor tensor, torch.ScalarType dtype, string name)
    {
        if (tensor.device_type != DeviceType.CUDA)
        {
            throw new ArgumentException($"{name} must be on CUDA, is on {tensor.device}", name);
        }

        if (tensor.dtype != dtype)
        {
            throw new ArgumentException($"{name} must be {dtype}, is {tensor.dtype}", name);
        }

        if (tensor.stride(-1) != 1)
        {
            throw new ArgumentException($"{name} must be contiguous in its last dimension", name);
        }

        return Of(tensor);
    }

    [DllImport("LibTorchSharp")]
    static extern IntPtr THSStorage_data_ptr(IntPtr tensor);
}
