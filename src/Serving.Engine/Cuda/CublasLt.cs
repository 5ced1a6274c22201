using System.Runtime.InteropServices;

namespace Serving.Engine.Cuda;

/// cuBLASLt, the matrix-product library under cuBLAS, bound directly: TorchSharp runs every product with cuBLAS's own
/// choice of algorithm, and at decode batch sizes another of cuBLASLt's candidates is often faster (MatmulTuning
/// times them), and FP8 products (Fp8Products) run nowhere else. Only what y = x W^T needs: 16-bit x and W, or e4m3 x
/// and W with a scale each and a 16-bit y; float32 accumulation, no bias. The library is the one libtorch's CUDA build
/// loads (its major version in the file name, as NVRTC's).
internal static unsafe class CublasLt
{
    static readonly IntPtr Library = NativeLibraryLoader.LoadFirst(
        "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", "cublasLt64_13.dll", "cublasLt64_12.dll");

    static readonly delegate* unmanaged<IntPtr*, int> CreateFn = (delegate* unmanaged<IntPtr*, int>)Export("cublasLtCreate");
    static readonly delegate* unmanaged<IntPtr, int> DestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cublasLtDestroy");
    static readonly delegate* unmanaged<IntPtr*, int, int, int> DescCreateFn = (delegate* unmanaged<IntPtr*, int, int, int>)Export("cublasLtMatmulDescCreate");
    static readonly delegate* unmanaged<IntPtr, int> DescDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cublasLtMatmulDescDestroy");
    static readonly delegate* unmanaged<IntPtr, int, void*, nuint, int> DescSetFn =
        (delegate* unmanaged<IntPtr, int, void*, nuint, int>)Export("cublasLtMatmulDescSetAttribute");
    static readonly delegate* unmanaged<IntPtr*, int, ulong, ulong, long, int> LayoutCreateFn =
        (delegate* unmanaged<IntPtr*, int, ulong, ulong, long, int>)Export("cublasLtMatrixLayoutCreate");
    static readonly delegate* unmanaged<IntPtr, int> LayoutDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cublasLtMatrixLayoutDestroy");
    static readonly delegate* unmanaged<IntPtr*, int> PreferenceCreateFn = (delegate* unmanaged<IntPtr*, int>)Export("cublasLtMatmulPreferenceCreate");
    static readonly delegate* unmanaged<IntPtr, int> PreferenceDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cublasLtMatmulPreferenceDestroy");
    static readonly delegate* unmanaged<IntPtr, int, void*, nuint, int> PreferenceSetFn =
        (delegate* unmanaged<IntPtr, int, void*, nuint, int>)Export("cublasLtMatmulPreferenceSetAttribute");
    static readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, HeuristicResult*, int*, int> HeuristicFn =
        (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, HeuristicResult*, int*, int>)Export("cublasLtMatmulAlgoGetHeuristic");
    static readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, Algorithm*, HeuristicResult*, int> CheckFn =
        (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, Algorithm*, HeuristicResult*, int>)Export("cublasLtMatmulAlgoCheck");
    static readonly delegate* unmanaged<IntPtr, IntPtr, float*, IntPtr, IntPtr, IntPtr, IntPtr, float*, IntPtr, IntPtr, IntPtr, IntPtr, Algorithm*, IntPtr, nuint, IntPtr, int> MatmulFn =
        (delegate* unmanaged<IntPtr, IntPtr, float*, IntPtr, IntPtr, IntPtr, IntPtr, float*, IntPtr, IntPtr, IntPtr, IntPtr, Algorithm*, IntPtr, nuint, IntPtr, int>)Export("cublasLtMatmul");

    const int ComputeFloat32 = 68;                // CUBLAS_COMPUTE_32F
    const int DataFloat32 = 0;                    // CUDA_R_32F
    const int DescTransposeA = 3;                 // CUBLASLT_MATMUL_DESC_TRANSA
    const int DescAScalePointer = 17;             // CUBLASLT_MATMUL_DESC_A_SCALE_POINTER
    const int DescBScalePointer = 18;             // CUBLASLT_MATMUL_DESC_B_SCALE_POINTER
    const int DescAScaleMode = 31;                // CUBLASLT_MATMUL_DESC_A_SCALE_MODE
    const int DescBScaleMode = 32;                // CUBLASLT_MATMUL_DESC_B_SCALE_MODE
    const int ScaleOuterVector = 3;               // CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
    const int ScaleVector128 = 4;                 // CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
    const int ScaleBlock128 = 5;                  // CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
    const int PreferenceMaxWorkspaceBytes = 1;    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    const int OperationTranspose = 1;             // CUBLAS_OP_T

    /// cublasLtMatmulAlgo_t: an opaque 64-byte description of one kernel and its configuration.
    [StructLayout(LayoutKind.Sequential)]
    public struct Algorithm
    {
        public fixed ulong Data[8];
    }

    /// cublasLtMatmulHeuristicResult_t
    [StructLayout(LayoutKind.Sequential)]
    struct HeuristicResult
    {
        public Algorithm Algorithm;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    /// CUDA's data type code of a 16-bit element type: bfloat16 or float16.
    public static int DataType(TorchSharp.torch.ScalarType dtype) => dtype switch
    {
        TorchSharp.torch.ScalarType.BFloat16 => 14,   // CUDA_R_16BF
        TorchSharp.torch.ScalarType.Float16 => 2,     // CUDA_R_16F
        _ => throw new ArgumentException($"cuBLASLt products here take bfloat16 or float16, not {dtype}"),
    };

    /// CUDA's data type code of FP8 E4M3 (CUDA_R_8F_E4M3).
    public const int Fp8E4M3 = 28;

    /// How an FP8 product's two scales apply (12.9 and later, sm_90, for all but Scalars).
    public enum Scales
    {
        /// One float32 for W, one for x.
        Scalars,
        /// One per row of W (N, its output channels) and one per row of x (M, its tokens): outer-vector scaling.
        OuterVectors,
        /// One per 128 x 128 block of W (ceil(N / 128) rows of ceil(K / 128), rows a multiple of 4 apart) and one per
        /// row of x and 128 of its columns (ceil(K / 128) groups of M, a group's M contiguous): cuBLASLt's
        /// BLK128x128 and VEC128 scaling (DeepSeek's).
        Blocks,
    }

    public static IntPtr CreateHandle()
    {
        IntPtr handle;
        Check(CreateFn(&handle), "cublasLtCreate");
        return handle;
    }

    public static void DestroyHandle(IntPtr handle) => Check(DestroyFn(handle), "cublasLtDestroy");

    /// y (M, N) = x (M, K) W^T with W (N, K) row-major, x and W of inputType and y of outputType (the same 16-bit type,
    /// or e4m3 in and 16 bits out), x's rows ldx elements apart and y's rows contiguous: in cuBLAS's column-major terms
    /// D (N x M) = op(A) B with A = W read transposed, B = x. An FP8 product also takes W's and x's scales (Run), as
    /// scales says; a library without that scaling refuses the description (throws).
    public sealed class Problem : IDisposable
    {
        readonly IntPtr _desc, _a, _b, _c;

        public Problem(int dataType, long n, long k, long m, long ldx) : this(dataType, dataType, n, k, m, ldx) { }

        public Problem(int inputType, int outputType, long n, long k, long m, long ldx, Scales scales = Scales.Scalars)
        {
            (N, K, M) = (n, k, m);
            IntPtr desc, a, b, c;
            Check(DescCreateFn(&desc, ComputeFloat32, DataFloat32), "cublasLtMatmulDescCreate");
            var transpose = OperationTranspose;
            Check(DescSetFn(desc, DescTransposeA, &transpose, sizeof(int)), "cublasLtMatmulDescSetAttribute");
            if (scales != Scales.Scalars)
            {
                var (weightMode, inputMode) = scales == Scales.Blocks ? (ScaleBlock128, ScaleVector128) : (ScaleOuterVector, ScaleOuterVector);
                var (aStatus, bStatus) = (DescSetFn(desc, DescAScaleMode, &weightMode, sizeof(int)), DescSetFn(desc, DescBScaleMode, &inputMode, sizeof(int)));
                if (aStatus != 0 || bStatus != 0)
                {
                    DescDestroyFn(desc);
                    Check(aStatus != 0 ? aStatus : bStatus, $"cublasLtMatmulDescSetAttribute ({scales} scales)");
                }
            }
            Check(LayoutCreateFn(&a, inputType, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate");
            Check(LayoutCreateFn(&b, inputType, (ulong)k, (ulong)m, ldx), "cublasLtMatrixLayoutCreate");
            Check(LayoutCreateFn(&c, outputType, (ulong)n, (ulong)m, n), "cublasLtMatrixLayoutCreate");
            (_desc, _a, _b, _c) = (desc, a, b, c);
        }

        public long N { get; }
        public long K { get; }
        public long M { get; }

        /// Up to <paramref name="count"/> algorithms cuBLASLt's heuristics rank for this problem, best guess first.
        public IReadOnlyList<Algorithm> Candidates(IntPtr handle, int count, long workspaceBytes)
        {
            IntPtr preference;
            Check(PreferenceCreateFn(&preference), "cublasLtMatmulPreferenceCreate");
            try
            {
                var bytes = (ulong)workspaceBytes;
                Check(PreferenceSetFn(preference, PreferenceMaxWorkspaceBytes, &bytes, sizeof(ulong)), "cublasLtMatmulPreferenceSetAttribute");
                var results = new HeuristicResult[count];
                int returned;
                fixed (HeuristicResult* r = results)
                    Check(HeuristicFn(handle, _desc, _a, _b, _c, _c, preference, count, r, &returned), "cublasLtMatmulAlgoGetHeuristic");
                return results.Take(returned).Where(r => r.State == 0).Select(r => r.Algorithm).ToList();
            }
            finally
            {
                PreferenceDestroyFn(preference);
            }
        }

        /// Whether <paramref name="algorithm"/> (chosen for another M, say) runs this problem within the workspace.
        public bool Accepts(IntPtr handle, Algorithm algorithm, long workspaceBytes)
        {
            HeuristicResult result;
            return CheckFn(handle, _desc, _a, _b, _c, _c, &algorithm, &result) == 0 && (long)result.WorkspaceSize <= workspaceBytes;
        }

        /// Where an FP8 product's scales are (device pointers, float32): W's and x's. cuBLASLt wants them set before it
        /// ranks algorithms for vectors or blocks of scales, not only before it runs one.
        public void UseScales(IntPtr weightScale, IntPtr inputScale)
        {
            Check(DescSetFn(_desc, DescAScalePointer, &weightScale, (nuint)sizeof(IntPtr)), "cublasLtMatmulDescSetAttribute");
            Check(DescSetFn(_desc, DescBScalePointer, &inputScale, (nuint)sizeof(IntPtr)), "cublasLtMatmulDescSetAttribute");
        }

        /// Queues y = x W^T on the stream (device pointers); an FP8 product's y is x W^T with each operand scaled by its
        /// scales (float32 on the device, as the problem's Scales lays them out).
        public void Run(IntPtr handle, Algorithm algorithm, IntPtr weight, IntPtr x, IntPtr y, IntPtr workspace, long workspaceBytes, IntPtr stream,
            IntPtr weightScale = default, IntPtr inputScale = default)
        {
            if (weightScale != IntPtr.Zero) UseScales(weightScale, inputScale);
            float alpha = 1f, beta = 0f;
            Check(MatmulFn(handle, _desc, &alpha, weight, _a, x, _b, &beta, y, _c, y, _c, &algorithm, workspace, (nuint)workspaceBytes, stream),
                "cublasLtMatmul");
        }

        public void Dispose()
        {
            LayoutDestroyFn(_a);
            LayoutDestroyFn(_b);
            LayoutDestroyFn(_c);
            DescDestroyFn(_desc);
        }
    }

    static void Check(int status, string call)
    {
        if (status != 0) throw new CudaException($"{call} failed with cuBLAS status {status}");
    }

    static IntPtr Export(string name) => NativeLibraryLoader.Export(Library, name);
}
