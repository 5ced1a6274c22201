using System.Reflection;

namespace Serving.Engine.Cuda;

/// A CUDA module compiled from this assembly's embedded kernel sources with NVRTC for one device and one
/// set of compile-time defines, loaded into the device's primary context. Owns the module (Dispose unloads it).
internal sealed class KernelModule : IDisposable
{
    readonly CudaDevice _device;
    IntPtr _module;

    public KernelModule(CudaDevice device, IReadOnlyList<string> sourceNames, IReadOnlyDictionary<string, string> defines)
    {
        _device = device;
        var (cubin, _) = Compile(sourceNames, defines, device.ComputeCapability);
        device.MakeCurrent();
        _module = CudaDriver.LoadModule(cubin);
    }

    /// The sources (embedded, concatenated in order) compiled for sm_<paramref name="computeCapability"/> with these
    /// defines: the cubin and NVRTC's log. Needs no device (only NVRTC), so kernels can be compiled where none is.
    public static (byte[] Cubin, string Log) Compile(IReadOnlyList<string> sourceNames, IReadOnlyDictionary<string, string> defines,
        int computeCapability, params string[] extraOptions)
    {
        var source = string.Join("\n", sourceNames.Select(ReadEmbeddedSource));
        var options = defines.Select(d => $"-D{d.Key}={d.Value}").Append("-std=c++17").Append("-default-device").Concat(extraOptions);
        return Nvrtc.CompileToCubin(source, sourceNames[0], computeCapability, options);
    }

    public IntPtr GetFunction(string name) => CudaDriver.GetFunction(_module, name);

    public void Dispose()
    {
        if (_module == IntPtr.Zero)
        {
            return;
        }

        _device.MakeCurrent();
        CudaDriver.UnloadModule(_module);
        _module = IntPtr.Zero;
    }

    static string ReadEmbeddedSource(string fileName)
    {
        var assembly = typeof(KernelModule).Assembly;
        var resource = assembly.GetManifestResourceNames().Single(n => n.EndsWith("." + fileName, StringComparison.Ordinal));
        using var stream = assembly.GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
