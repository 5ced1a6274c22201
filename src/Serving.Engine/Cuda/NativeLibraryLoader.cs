using System.Runtime.InteropServices;

namespace Serving.Engine.Cuda;

/// Loads the first of several candidate shared libraries and resolves exports from it. The CUDA driver and
/// NVRTC carry their major version in the file name (libnvrtc.so.13 on CUDA 13), so a fixed DllImport
/// name would tie the engine to one toolkit.
internal static class NativeLibraryLoader
{
    public static IntPtr LoadFirst(params string[] candidates)
    {
        foreach (var name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out var handle))
            {
                return handle;
            }
        }

        throw new CudaException($"none of {string.Join(", ", candidates)} could be loaded (is the CUDA driver/toolkit on LD_LIBRARY_PATH?)");
    }

    public static IntPtr Export(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? address
            : throw new CudaException($"export {name} not found");
}
