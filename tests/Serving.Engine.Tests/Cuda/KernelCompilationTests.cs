using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// The fused kernels compile for the shapes the engine runs, for the architectures it targets, on a machine without
/// a GPU: NVRTC (Debian's non-free libnvrtc, CUDA 11.8, installed on first use by DebianPackages; the GPU machine
/// compiles with its own, newer NVRTC) builds the same module FusedKernels loads, every entry point the launchers
/// look up is in the cubin, and ptxas spills no register of any kernel. A kernel edit that breaks one of these fails
/// here, in CI, rather than first on the device. The log lists each entry point's code bytes: a kernel that runs once a
/// layer as a single block fetches its code cold (the expert weights evict it from L2), so its size is its latency
/// (expert_choice's 111 KB cost ~6 us a launch at batch 1 on an H100).
public sealed class KernelCompilationTests(ITestOutputHelper output)
{
    static readonly Lazy<Task> Installed = new(() =>
        DebianPackages.InstallAsync("The kernel compilation tests", nonFree: true, "libnvrtc11.2", "libnvrtc-builtins11.8"));
    static readonly Regex SpillStores = new(@"(\d+) bytes spill stores");

    [Theory]
    [InlineData("bfloat16", "auto", 128, 32, 8, 90)]      // Llama-3-8B
    [InlineData("bfloat16", "fp8", 128, 32, 8, 90)]       // its FP8 pool (CUDA 11.8's ptxas takes e4m3 from sm_90; 12.x from sm_89)
    [InlineData("bfloat16", "auto", 128, 64, 8, 80)]      // GQA-8 on an A100
    [InlineData("float16", "auto", 64, 8, 8, 90)]         // MHA, head dim 64
    [InlineData("bfloat16", "auto", 128, 28, 4, 90)]      // Qwen2.5-7B: 7 heads per KV head, the MMA's columns
    [InlineData("bfloat16", "auto", 128, 32, 1, 90)]      // MQA: two 16-row head tiles in one block
    [InlineData("bfloat16", "fp8", 128, 32, 1, 90)]       // MQA over FP8
    [InlineData("float16", "fp8", 96, 32, 8, 90)]         // FP8 fragments in 8- and 4-byte words
    [InlineData("bfloat16", "auto", 128, 48, 1, 90)]      // three tiles: two blocks of two
    [InlineData("float16", "bfloat16", 96, 40, 2, 90)]    // Phi-3's head dim, a ragged group of 20, pool of another type
    [InlineData("bfloat16", "auto", 256, 16, 2, 90)]      // head dim 256 (gemma): tensor cores on sm_90, tokens as MMA rows
    [InlineData("bfloat16", "fp8", 256, 8, 4, 90)]        // gemma3-4b over FP8
    [InlineData("bfloat16", "auto", 256, 16, 2, 80)]      // head dim 256 on an A100: the CUDA-core attention kernel
    [InlineData("bfloat16", "auto", 256, 32, 2, 90)]      // 16 heads per KV head at 256: the CUDA-core kernel (registers)
    [InlineData("float32", "auto", 16, 4, 2, 90)]         // the fixtures in float32
    [InlineData("float32", "bfloat16", 64, 8, 2, 80)]     // a float32 model over a bfloat16 pool
    public Task FusedKernelsCompileWithEveryEntryPointAndNoSpills(string dtype, string cache, int headDim, int heads, int kvHeads, int sm)
    {
        var modelDtype = ModelDtype.Parse(dtype, "dtype");
        return CompileAndCheck(new KernelShape(modelDtype, KVCacheDtype.Resolve(cache, modelDtype), headDim, headDim, heads, kvHeads), sm);
    }

    /// The families' norms and rotary pairs (KernelShape's NormWeight, NormsCentered, InterleavedRope) compile too.
    [Theory]
    [InlineData(RmsNormWeight.OffsetBeforeRounding, false, false, 256, 256, 8, 4)]   // gemma3: (1 + w) norms, head dim 256
    [InlineData(RmsNormWeight.OffsetBeforeRounding, false, false, 128, 128, 32, 16)] // gemma-3-27b
    [InlineData(RmsNormWeight.BeforeRounding, false, false, 128, 128, 40, 40)]       // olmo2
    [InlineData(RmsNormWeight.AfterRounding, false, true, 128, 64, 48, 2)]           // glm4: interleaved pairs over half of each head
    [InlineData(RmsNormWeight.BeforeRounding, true, true, 128, 128, 32, 8, RotaryPrecision.Float32RoundedTables)]   // cohere2: LayerNorm, interleaved pairs in float32
    [InlineData(RmsNormWeight.BeforeRounding, true, true, 128, 128, 96, 8, RotaryPrecision.Float32RoundedTables)]   // Command R+: LayerNorm over each q/k head too
    [InlineData(RmsNormWeight.AfterRounding, false, true, 128, 128, 16, 2, RotaryPrecision.Float32)]               // ERNIE 4.5: float32 rope
    [InlineData(RmsNormWeight.OffsetBeforeRounding, false, false, 256, 256, 16, 8, RotaryPrecision.ModelDtype, 50.0)]   // gemma-2-9b: soft-capped, CUDA cores
    [InlineData(RmsNormWeight.OffsetBeforeRounding, false, false, 128, 128, 32, 16, RotaryPrecision.ModelDtype, 50.0)]  // gemma-2-27b: on tensor cores
    public Task TheFamiliesKernelsCompile(RmsNormWeight normWeight, bool centered, bool interleaved, int headDim, int rotaryDim, int heads, int kvHeads,
        RotaryPrecision precision = RotaryPrecision.ModelDtype, double softcap = 0) =>
        CompileAndCheck(new KernelShape(ScalarType.BFloat16, KVCacheDtype.BFloat16, headDim, rotaryDim, heads, kvHeads)
        {
            NormWeight = normWeight, NormsCentered = centered, InterleavedRope = interleaved, RotaryPrecision = precision,
            AttentionSoftcap = softcap,
        }, 90);

    async Task CompileAndCheck(KernelShape shape, int sm)
    {
        await Installed.Value;
        Assert.True(FusedKernels.Supports(shape, sm), $"{shape} is a shape the engine runs on sm_{sm}");

        var (cubin, log) = KernelModule.Compile(FusedKernels.SourceNames, FusedKernels.Defines(shape), sm, "--ptxas-options=-v");

        var attention = DecodeAttentionKernel.For(shape, sm);
        string[] entryPoints =
        [
            "rms_norm", "add_rms_norm", "head_rms_norm", "rope_kv_write", "kv_write", "gather_kv", "silu_mul", "clamped_glu",
            .. FusedKernels.ExpertChoiceKernels, .. FusedKernels.ExpertRouteKernels, "expert_groups", "expert_combine",
            "paged_attention_reduce", attention.Name, .. attention.TensorCores ? ["paged_prefill_attention_mma"] : Array.Empty<string>(),
            .. shape.Dtype == ScalarType.Float32 ? Array.Empty<string>() : ExpertLinearKernels.EntryPoints,
        ];
        output.WriteLine($"{shape} on sm_{sm}: {attention.Name}, {cubin.Length} bytes of cubin; ptxas:");
        CheckEntryPointsAndSpills(cubin, log, entryPoints);
    }

    /// The FP8 products' kernels (fp8_quantize.cu and fp8_few_rows.cu, after element_types.cu) compile for both 16-bit
    /// model types without spilling (CUDA 11.8's ptxas takes their e4m3 conversions from sm_90).
    [Theory]
    [InlineData("bfloat16")]
    [InlineData("float16")]
    public async Task TheFp8QuantizationKernelsCompile(string dtype)
    {
        await Installed.Value;
        var (cubin, log) = KernelModule.Compile(Fp8Products.SourceNames, Fp8Products.Defines(ModelDtype.Parse(dtype, "dtype")), 90, "--ptxas-options=-v");
        output.WriteLine($"the FP8 products' module for {dtype} on sm_90: {cubin.Length} bytes of cubin; ptxas:");
        CheckEntryPointsAndSpills(cubin, log, ["fp8_absmax", "fp8_quantize", "fp8_quantize_small", "fp8_quantize_rows", "fp8_quantize_row_groups",
            "fp8_quantize_scaled_rows", "fp8_quantize_scaled_blocks", "fp8_linear_few_rows", "fp8_linear_few_rows_lean", "fp8_linear_few_rows_blocks",
            "fp8_linear_few_rows_lean_blocks", "fp8_experts_few_rows", "fp8_experts_few_rows_blocks"]);
    }

    void CheckEntryPointsAndSpills(byte[] cubin, string log, string[] entryPoints)
    {
        var symbols = Encoding.ASCII.GetString(cubin);
        Assert.All(entryPoints, name => Assert.Contains(name + "\0", symbols));
        var spills = SpillStores.Matches(log).Select(m => int.Parse(m.Groups[1].Value)).ToArray();
        foreach (var line in log.Split('\n').Where(l => l.Contains("registers") || l.Contains("Compiling entry") || l.Contains("spill stores"))) output.WriteLine(line.Trim());
        var code = CodeBytes(cubin);
        foreach (var name in entryPoints) output.WriteLine($"{name}: {code.GetValueOrDefault(name)} bytes of code");
        Assert.All(entryPoints, name => Assert.True(code.GetValueOrDefault(name) > 0, $"{name} has code"));
        Assert.NotEmpty(spills);
        Assert.All(spills, bytes => Assert.Equal(0, bytes));
    }

    // each function's code bytes: the sizes of the cubin's (ELF64) .text.<function> sections
    static Dictionary<string, long> CodeBytes(byte[] cubin)
    {
        long U64(int at) => (long)BinaryPrimitives.ReadUInt64LittleEndian(cubin.AsSpan(at));
        int U32(int at) => (int)BinaryPrimitives.ReadUInt32LittleEndian(cubin.AsSpan(at));
        int U16(int at) => BinaryPrimitives.ReadUInt16LittleEndian(cubin.AsSpan(at));
        var (headers, headerSize, count) = ((int)U64(0x28), U16(0x3A), U16(0x3C));   // e_shoff, e_shentsize, e_shnum
        var strings = (int)U64(headers + U16(0x3E) * headerSize + 0x18);            // e_shstrndx's sh_offset
        var code = new Dictionary<string, long>();
        for (var header = headers; header < headers + count * headerSize; header += headerSize)
        {
            var nameAt = strings + U32(header);                                        // sh_name
            var name = Encoding.ASCII.GetString(cubin, nameAt, Array.IndexOf(cubin, (byte)0, nameAt) - nameAt);
            if (name.StartsWith(".text.", StringComparison.Ordinal)) code[name[".text.".Length..]] = U64(header + 0x20);   // sh_size
        }
        return code;
    }
}
