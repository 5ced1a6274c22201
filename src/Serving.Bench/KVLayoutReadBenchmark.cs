using System.CommandLine;
using Serving.Engine.Cuda;
using static TorchSharp.torch;

namespace Serving.Bench;

/// serving-bench kv-read: how fast a decode step's paged K/V reads can go for each pool layout, with nothing but the
/// reads. Each block reads every K and V row of one (sequence, KV head), block by block through a shuffled block table,
/// as the decode attention kernel does; the pool is laid out token-major (the engine's: a token's KV heads side by
/// side, so a head's row is one short piece every heads x row bytes) or head-major (a block's rows of one head
/// contiguous, FlashInfer's HND), and as a flat array per (sequence, head) for the ceiling of reads. The question it
/// answers: how much of the gap between decode attention (3.8 TB/s at batch 64, ctx 2048) and the copy bandwidth is
/// the layout's.
internal static class KVLayoutReadBenchmark
{
    sealed record Options(int Seqs, int Context, int KVHeads, int HeadDim, int BlockSize, int ElementBytes, int Repeats);

    // mode 0: token-major pool, 1: head-major pool, 2: each (sequence, head)'s rows contiguous
    const string Source = """
        extern "C" __global__ void __launch_bounds__(128) read_kv(const uint4* __restrict__ k, const uint4* __restrict__ v,
                const int* __restrict__ table, int blocks_per_seq, int block_size, int heads, int row_vectors, int mode,
                unsigned int* __restrict__ sink) {
            const int head = blockIdx.x, seq = blockIdx.y, rows = blocks_per_seq * block_size, total = rows * row_vectors;
            unsigned int acc = 0;
        #pragma unroll 4
            for (int i = threadIdx.x; i < total; i += blockDim.x) {
                const int r = i / row_vectors, c = i % row_vectors, t = r % block_size;
                const long block = table[seq * blocks_per_seq + r / block_size];
                const long row = mode == 0 ? (block * block_size + t) * heads + head
                               : mode == 1 ? (block * heads + head) * block_size + t
                               : ((long)seq * heads + head) * rows + r;
                unsigned int a0, a1, a2, a3, b0, b1, b2, b3;
                asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(a0), "=r"(a1), "=r"(a2), "=r"(a3) : "l"(k + row * row_vectors + c));
                asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "l"(v + row * row_vectors + c));
                acc ^= a0 ^ a1 ^ a2 ^ a3 ^ b0 ^ b1 ^ b2 ^ b3;
            }
            if (acc == 0x9e3779b9u) sink[0] = acc;   // keeps the loads
        }
        """;

    public static Command Command()
    {
        var seqs = new Option<int>("--seqs") { Description = "sequences (the decode batch)", DefaultValueFactory = _ => 64 };
        var context = new Option<int>("--context") { Description = "tokens per sequence", DefaultValueFactory = _ => 2048 };
        var kvHeads = new Option<int>("--kv-heads") { DefaultValueFactory = _ => 8 };
        var headDim = new Option<int>("--head-dim") { DefaultValueFactory = _ => 128 };
        var blockSize = new Option<int>("--block-size") { DefaultValueFactory = _ => 16 };
        var elementBytes = new Option<int>("--element-bytes") { Description = "2: bf16 pool, 1: FP8", DefaultValueFactory = _ => 2 };
        var repeats = new Option<int>("--repeats") { Description = "timed samples per layout, each of 10 reads back to back (the median is reported)", DefaultValueFactory = _ => 10 };
        var command = new Command("kv-read", "Paged K/V read bandwidth by pool layout (token-major, head-major, flat)")
        {
            seqs, context, kvHeads, headDim, blockSize, elementBytes, repeats,
        };
        command.SetAction(result => Run(new Options(result.GetValue(seqs), result.GetValue(context), result.GetValue(kvHeads),
            result.GetValue(headDim), result.GetValue(blockSize), result.GetValue(elementBytes), result.GetValue(repeats))));
        return command;
    }

    const int ReadsPerSample = 10;   // back-to-back reads per timed sample: the host's synchronization stays out of the figure

    // milliseconds per read_kv in this mode (Timing's median of o.Repeats samples, after two untimed)
    static unsafe double ReadMilliseconds(IntPtr function, IntPtr stream, Options o, (Tensor K, Tensor V, Tensor Table, Tensor Sink) tensors,
        int blocksPerSeq, int rowVectors, int mode)
    {
        var (kPtr, vPtr, tablePtr, sinkPtr) = (TensorPointer.Of(tensors.K), TensorPointer.Of(tensors.V), TensorPointer.Of(tensors.Table), TensorPointer.Of(tensors.Sink));
        var (bps, bs, heads, vectors, m) = (blocksPerSeq, o.BlockSize, o.KVHeads, rowVectors, mode);
        void** args = stackalloc void*[] { &kPtr, &vPtr, &tablePtr, &bps, &bs, &heads, &vectors, &m, &sinkPtr };
        var grid = ((uint)o.KVHeads, (uint)o.Seqs, 1u);
        return Timing.MedianMilliseconds(() =>
        {
            for (var r = 0; r < ReadsPerSample; r++) CudaDriver.Launch(function, grid, 128, 0, stream, args);
        }, warmup: 2, samples: o.Repeats, cuda: true) / ReadsPerSample;
    }

    static int Run(Options o)
    {
        var cudaDevice = CudaDevice.Open(0);
        using var stream = CudaStream.Create(cudaDevice);
        stream.MakeCurrent();
        var (cubin, _) = Nvrtc.CompileToCubin(Source, "kv_read.cu", cudaDevice.ComputeCapability, ["-std=c++17", "-default-device"]);
        cudaDevice.MakeCurrent();
        var module = CudaDriver.LoadModule(cubin);
        try
        {
            var function = CudaDriver.GetFunction(module, "read_kv");
            var blocksPerSeq = (o.Context + o.BlockSize - 1) / o.BlockSize;
            var numBlocks = o.Seqs * blocksPerSeq;
            var rowBytes = o.HeadDim * o.ElementBytes;
            var poolBytes = (long)numBlocks * o.BlockSize * o.KVHeads * rowBytes;
            using var scope = NewDisposeScope();
            var device = CUDA;
            var k = randint(0, 255, [poolBytes], dtype: ScalarType.Byte, device: device);
            var v = randint(0, 255, [poolBytes], dtype: ScalarType.Byte, device: device);
            var table = randperm(numBlocks, dtype: ScalarType.Int32, device: device);   // sequence s owns entries [s, s + 1) x blocksPerSeq
            var sink = zeros(1, dtype: ScalarType.Int32, device: device);
            var bytes = 2.0 * o.Seqs * blocksPerSeq * o.BlockSize * o.KVHeads * rowBytes;
            Console.WriteLine($"{o.Seqs} sequences x {o.Context} tokens, {o.KVHeads} KV heads of {rowBytes} B, blocks of {o.BlockSize}: " +
                $"{bytes / 1e9:F2} GB of K and V per read");
            foreach (var (mode, name) in new[] { (0, "token-major (the engine's pool)"), (1, "head-major (HND)"), (2, "flat per (sequence, head)") })
            {
                var fastest = ReadMilliseconds(function, stream.Handle, o, (k, v, table, sink), blocksPerSeq, rowBytes / 16, mode);
                Console.WriteLine($"  {name,-34} {fastest * 1e3,8:F1} us  {bytes / (fastest / 1e3) / 1e12:F2} TB/s");
            }
            var copy = DeviceCeilings.Measure(ScalarType.BFloat16, device).BandwidthBytesPerSecond;
            Console.WriteLine($"  {"copy bandwidth (read + write)",-34} {"",8}     {copy / 1e12:F2} TB/s");
            stream.Synchronize();
            return 0;
        }
        finally
        {
            CudaDriver.UnloadModule(module);
        }
    }
}
