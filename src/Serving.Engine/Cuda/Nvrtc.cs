using System.Runtime.InteropServices;
using System.Text;

namespace Serving.Engine.Cuda;

/// NVRTC, the CUDA run-time compiler: turns the kernels' C++ source into a cubin for the device's own
/// architecture at start-up, so the engine ships no prebuilt binaries and no toolkit version is baked in.
internal static unsafe class Nvrtc
{
    static readonly IntPtr Library = NativeLibraryLoader.LoadFirst(
        "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "libnvrtc.so.11.2", "nvrtc64_130_0.dll", "nvrtc64_120_0.dll");

    static readonly delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgramFn =
        (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)Export("nvrtcCreateProgram");
    static readonly delegate* unmanaged<IntPtr, int, byte**, int> CompileProgramFn = (delegate* unmanaged<IntPtr, int, byte**, int>)Export("nvrtcCompileProgram");
    static readonly delegate* unmanaged<IntPtr, nuint*, int> GetLogSizeFn = (delegate* unmanaged<IntPtr, nuint*, int>)Export("nvrtcGetProgramLogSize");
    static readonly delegate* unmanaged<IntPtr, byte*, int> GetLogFn = (delegate* unmanaged<IntPtr, byte*, int>)Export("nvrtcGetProgramLog");
    static readonly delegate* unmanaged<IntPtr, nuint*, int> GetCubinSizeFn = (delegate* unmanaged<IntPtr, nuint*, int>)Export("nvrtcGetCUBINSize");
    static readonly delegate* unmanaged<IntPtr, byte*, int> GetCubinFn = (delegate* unmanaged<IntPtr, byte*, int>)Export("nvrtcGetCUBIN");
    static readonly delegate* unmanaged<IntPtr*, int> DestroyProgramFn = (delegate* unmanaged<IntPtr*, int>)Export("nvrtcDestroyProgram");
    static readonly delegate* unmanaged<int, byte*> GetErrorStringFn = (delegate* unmanaged<int, byte*>)Export("nvrtcGetErrorString");

    /// Compiles <paramref name="source"/> to a cubin for sm_<paramref name="computeCapability"/> (e.g. 90), with the
    /// compiler's log (warnings; ptxas' register and spill report under --ptxas-options=-v). The log is part of the
    /// exception when compilation fails.
    public static (byte[] Cubin, string Log) CompileToCubin(string source, string name, int computeCapability, IEnumerable<string> options)
    {
        var program = CreateProgram(source, name);
        try
        {
            var all = options.Prepend($"--gpu-architecture=sm_{computeCapability}").ToArray();
            var result = Compile(program, all);
            if (result != 0)
            {
                throw new CudaException($"NVRTC could not compile {name} ({ErrorString(result)}):\n{ReadLog(program)}");
            }

            return (ReadCubin(program), ReadLog(program));
        }
        finally
        {
            DestroyProgramFn(&program);
        }
    }

    static IntPtr CreateProgram(string source, string name)
    {
        IntPtr program;
        fixed (byte* src = Utf8(source))
        fixed (byte* file = Utf8(name))
        {
            Check(CreateProgramFn(&program, src, file, 0, null, null), "nvrtcCreateProgram");
        }

        return program;
    }

    static int Compile(IntPtr program, string[] options)
    {
        var handles = options.Select(o => GCHandle.Alloc(Utf8(o), GCHandleType.Pinned)).ToArray();
        try
        {
            var pointers = stackalloc byte*[handles.Length];
            for (var i = 0; i < handles.Length; i++)
            {
                pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
            }

            return CompileProgramFn(program, handles.Length, pointers);
        }
        finally
        {
            foreach (var handle in handles)
            {
                handle.Free();
            }
        }
    }

    static string ReadLog(IntPtr program)
    {
        nuint size;
        Check(GetLogSizeFn(program, &size), "nvrtcGetProgramLogSize");
        var log = new byte[(int)size];
        fixed (byte* data = log)
        {
            Check(GetLogFn(program, data), "nvrtcGetProgramLog");
        }

        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    static byte[] ReadCubin(IntPtr program)
    {
        nuint size;
        Check(GetCubinSizeFn(program, &size), "nvrtcGetCUBINSize");
        var cubin = new byte[(int)size];
        fixed (byte* data = cubin)
        {
            Check(GetCubinFn(program, data), "nvrtcGetCUBIN");
        }

        return cubin;
    }

    static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new CudaException($"{call} failed: {ErrorString(result)}");
        }
    }

    static string ErrorString(int result) => Marshal.PtrToStringAnsi((IntPtr)GetErrorStringFn(result)) ?? $"NVRTC error {result}";

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text + "\0");

    static IntPtr Export(string name) => NativeLibraryLoader.Export(Library, name);
}
