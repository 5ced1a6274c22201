using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Model.Backends;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// The paged decode attention kernels against float64 attention over the same scattered blocks, with and
/// without the split over context partitions, for GQA, MHA and MQA groupings: the CUDA-core kernel (float32) and the
/// tensor-core one (bfloat16 queries over a bfloat16 or FP8 pool); and the tensor-core prefill kernel (causal, several
/// new tokens per sequence after a cached context) against the same float64 attention.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class PagedAttentionTests(ITestOutputHelper output)
{
    const int BlockSize = 16;
    static readonly Scalar NaN = double.NaN.ToScalar();   // the output before the kernel: every element must be written

    [GpuTheory]
    [InlineData(32, 8, 128, 1, "float32")]      // GQA, one partition per sequence
    [InlineData(32, 8, 128, 1000, "float32")]   // GQA, split into many partitions
    [InlineData(8, 8, 64, 1000, "float32")]     // MHA
    [InlineData(16, 1, 128, 1000, "float32")]   // MQA: 16 query heads on one KV head
    [InlineData(32, 8, 128, 1, "bfloat16")]     // tensor cores from here on
    [InlineData(32, 8, 128, 1000, "bfloat16")]
    [InlineData(64, 8, 128, 1000, "bfloat16")]  // GQA-8: a half-full MMA tile
    [InlineData(8, 8, 64, 1000, "bfloat16")]
    [InlineData(28, 4, 128, 1000, "bfloat16")]  // 7 heads per KV head (Qwen2.5-7B): an odd number of MMA columns
    [InlineData(32, 1, 128, 1, "bfloat16")]     // MQA: two head tiles per KV head
    [InlineData(40, 2, 96, 1000, "bfloat16")]   // 20 heads per KV head: a ragged second tile, head dim 96
    [InlineData(48, 1, 128, 1000, "bfloat16")]  // three tiles: two blocks, the second with a warp of no rows
    [InlineData(64, 1, 64, 1000, "bfloat16")]   // four tiles in one block, one chunk stream
    [InlineData(32, 8, 128, 1, "fp8")]
    [InlineData(32, 8, 128, 1000, "fp8")]
    [InlineData(32, 1, 128, 1000, "fp8")]
    [InlineData(32, 4, 96, 1000, "fp8")]        // FP8 fragments read in 8- and 4-byte words
    [InlineData(16, 2, 64, 1, "fp8")]
    [InlineData(12, 2, 64, 1000, "fp8")]        // 6 heads per KV head (Qwen2.5-1.5B)
    // sliding windows (mistral, phi3): each query sees its context's last `window` positions, from mid-block; the plan
    // splits by the window (the span), or by the whole context where some other layer sees it all (no span)
    [InlineData(32, 8, 128, 1000, "float32", 300, true)]
    [InlineData(32, 8, 128, 1000, "bfloat16", 300, true)]
    [InlineData(32, 8, 128, 1000, "bfloat16", 300, false)]
    [InlineData(32, 8, 128, 1, "bfloat16", 50, true)]
    [InlineData(32, 1, 128, 1000, "bfloat16", 700, false)]
    [InlineData(32, 8, 128, 1000, "fp8", 300, true)]
    // gpt-oss's sinks: a logit per query head in each softmax, with one partition and through the reduce
    [InlineData(32, 8, 128, 1, "float32", 0, false, true)]
    [InlineData(32, 8, 128, 1000, "float32", 0, false, true)]
    [InlineData(64, 8, 64, 1, "bfloat16", 0, false, true)]
    [InlineData(64, 8, 64, 1000, "bfloat16", 128, false, true)]
    [InlineData(64, 8, 64, 1000, "fp8", 0, false, true)]
    // gemma2's soft-capping (a cap of 1 bends every score of these unit-sized ones): tokens and heads as MMA rows, head
    // dim 256, the CUDA-core kernel in float32, FP8, a window
    [InlineData(32, 16, 128, 1000, "bfloat16", 0, false, false, 1.0)]
    [InlineData(64, 1, 64, 1000, "bfloat16", 0, false, false, 1.0)]
    [InlineData(16, 8, 256, 1000, "bfloat16", 0, false, false, 1.0)]
    // head dim 256 (gemma) on tensor cores: one and many partitions, FP8, a window
    [InlineData(8, 4, 256, 1, "bfloat16")]
    [InlineData(8, 4, 256, 1000, "bfloat16")]
    [InlineData(32, 16, 256, 1000, "bfloat16", 300, false)]
    [InlineData(8, 4, 256, 1000, "fp8")]
    [InlineData(32, 8, 128, 1, "float32", 0, false, false, 1.0)]
    [InlineData(32, 8, 128, 1000, "fp8", 0, false, false, 1.0)]
    [InlineData(32, 16, 128, 1000, "bfloat16", 300, false, false, 1.0)]
    public void MatchesFloat64Attention(int numHeads, int numKVHeads, int headDim, int concurrentBlocks, string dtype,
        int window = 0, bool windowIsTheSpan = false, bool withSinks = false, double softcap = 0)
    {
        var (modelDtype, cacheDtype) = dtype switch
        {
            "float32" => (ScalarType.Float32, KVCacheDtype.Float32),
            "bfloat16" => (ScalarType.BFloat16, KVCacheDtype.BFloat16),
            _ => (ScalarType.BFloat16, KVCacheDtype.Fp8E4M3),
        };
        int[] contexts = [1, 17, 64, 65, 700, 4097];
        var device = CUDA;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var kernels = new FusedKernels(CudaDevice.Open(0), stream.Handle,
            new KernelShape(modelDtype, cacheDtype, headDim, headDim, numHeads, numKVHeads) { AttentionSoftcap = softcap },
            attentionSpan: windowIsTheSpan ? window : null);
        Assert.Equal(modelDtype != ScalarType.Float32, kernels.TensorCoreAttention);   // sm_90 (head dim 256 needs it)
        using var scope = NewDisposeScope();
        var numBlocks = contexts.Sum(c => (c + BlockSize - 1) / BlockSize);
        var blocks = Enumerable.Range(0, numBlocks).OrderBy(b => (b * 7919) % numBlocks).ToArray();  // scattered
        var tables = new int[contexts.Length][];
        for (int s = 0, next = 0; s < contexts.Length; next += tables[s].Length, s++)
            tables[s] = blocks[next..(next + (contexts[s] + BlockSize - 1) / BlockSize)];
        var batch = StepInputs.Build(contexts.Select((c, s) => new StepSequence(new int[c], c - 1, 1, tables[s])).ToList(), BlockSize);
        var keys = KVPoolValues.Random(cacheDtype, [numBlocks, BlockSize, numKVHeads, headDim], device);
        var values = KVPoolValues.Random(cacheDtype, [numBlocks, BlockSize, numKVHeads, headDim], device);
        var qkv = randn(contexts.Length, (numHeads + 2 * numKVHeads) * headDim, device: device).to(modelDtype);
        using var buffers = new DeviceStepBuffers(batch.NumTokens, batch.NumSeqs, batch.MaxBlocksPerSeq, device);
        var plan = kernels.PlanDecode(contexts.Length, contexts.Max(), concurrentBlocks);
        buffers.Upload(batch, Enumerable.Range(0, batch.NumSeqs).ToArray(), plan.PartitionSizeFor(contexts.Max()));
        var workspace = empty(plan.WorkspaceElements(numHeads, headDim), ScalarType.Float32, device);
        var result = full(contexts.Length, numHeads * headDim, NaN, dtype: modelDtype, device: device);   // poisoned: every element must be written
        var sinks = withSinks ? Sinks(numHeads, modelDtype) : null;
        var n = batch.NumSeqs;
        kernels.PagedDecodeAttention(qkv, keys, values, buffers.DecodeSeqs(n), buffers.TokenRows(n), buffers.BlockTables(n),
            buffers.ContextLengths(n), buffers.PartitionSize, ones(2, device: device), plan, result, workspace, window > 0 ? window : null, sinks);
        stream.Synchronize();

        var expected = Reference(qkv.narrow(1, 0, numHeads * headDim), KVPoolValues.Decoded(keys, cacheDtype), KVPoolValues.Decoded(values, cacheDtype), contexts, tables,
            numHeads, numKVHeads, headDim, window, sinks, softcap);
        var relative = ((result.to(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
        output.WriteLine($"{dtype}: {numHeads}/{numKVHeads} heads, dim {headDim}, window {window}, sinks {withSinks}, softcap {softcap}, {plan.NumPartitions} partitions: relative error {relative:E2}");
        // bfloat16 output and probabilities rounded to 16 bits for the P.V product: about 2^-8 per element
        Assert.True(relative < (dtype == "float32" ? 1e-5 : 1e-2), $"relative error {relative}");
    }

    [GpuTheory]
    [InlineData(32, 8, 128, "bfloat16")]
    [InlineData(64, 8, 128, "bfloat16")]
    [InlineData(8, 8, 64, "bfloat16")]
    [InlineData(32, 1, 128, "bfloat16")]
    [InlineData(40, 2, 96, "bfloat16")]
    [InlineData(48, 1, 128, "bfloat16")]
    [InlineData(32, 8, 128, "fp8")]
    [InlineData(32, 1, 128, "fp8")]
    [InlineData(32, 4, 96, "fp8")]
    // sliding windows: each new token sees the window's last positions up to its own; blocks start at their first row's
    // window, and rows whose window starts later see whole chunks of nothing first
    [InlineData(32, 8, 128, "bfloat16", 100)]
    [InlineData(64, 8, 128, "bfloat16", 37)]
    [InlineData(8, 8, 64, "bfloat16", 17)]
    [InlineData(32, 1, 128, "bfloat16", 300)]
    [InlineData(32, 8, 128, "fp8", 100)]
    [InlineData(64, 8, 64, "bfloat16", 0, true)]     // gpt-oss's sinks
    [InlineData(64, 8, 64, "bfloat16", 128, true)]
    [InlineData(64, 8, 64, "fp8", 0, true)]
    [InlineData(32, 16, 128, "bfloat16", 0, false, 1.0)]   // gemma2's soft-capping
    [InlineData(32, 8, 128, "fp8", 100, false, 1.0)]
    [InlineData(8, 4, 256, "bfloat16")]                    // head dim 256 (gemma)
    [InlineData(16, 8, 256, "bfloat16", 100, false, 50.0)]  // gemma2-9b's shape: window, soft-capping
    [InlineData(8, 4, 256, "fp8")]
    public void PrefillMatchesFloat64CausalAttention(int numHeads, int numKVHeads, int headDim, string dtype, int window = 0, bool withSinks = false,
        double softcap = 0)
    {
        // (context before this step, new tokens): a whole prompt, chunked prefills after cached context, one token
        (int Cached, int New)[] seqs = [(0, 37), (100, 17), (0, 1), (513, 300), (2000, 64)];
        var cacheDtype = dtype == "fp8" ? KVCacheDtype.Fp8E4M3 : KVCacheDtype.BFloat16;
        var device = CUDA;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var kernels = new FusedKernels(CudaDevice.Open(0), stream.Handle,
            new KernelShape(ScalarType.BFloat16, cacheDtype, headDim, headDim, numHeads, numKVHeads) { AttentionSoftcap = softcap });
        using var scope = NewDisposeScope();
        var contexts = seqs.Select(s => s.Cached + s.New).ToArray();
        var numBlocks = contexts.Sum(c => (c + BlockSize - 1) / BlockSize);
        var blocks = Enumerable.Range(0, numBlocks).OrderBy(b => (b * 7919) % numBlocks).ToArray();
        var tables = new int[seqs.Length][];
        for (int s = 0, next = 0; s < seqs.Length; next += tables[s].Length, s++)
            tables[s] = blocks[next..(next + (contexts[s] + BlockSize - 1) / BlockSize)];
        var batch = StepInputs.Build(seqs.Select((q, s) => new StepSequence(new int[contexts[s]], q.Cached, q.New, tables[s])).ToList(), BlockSize);
        var keys = KVPoolValues.Random(cacheDtype, [numBlocks, BlockSize, numKVHeads, headDim], device);
        var values = KVPoolValues.Random(cacheDtype, [numBlocks, BlockSize, numKVHeads, headDim], device);
        var qkv = randn(batch.NumTokens, (numHeads + 2 * numKVHeads) * headDim, device: device).to(ScalarType.BFloat16);
        using var buffers = new DeviceStepBuffers(batch.NumTokens, batch.NumSeqs, batch.MaxBlocksPerSeq, device);
        buffers.Upload(batch, [], 0);
        var prefills = tensor(Enumerable.Range(0, seqs.Length).SelectMany(s => new[] { s, batch.QueryStarts[s], seqs[s].New }).ToArray(),
            dtype: ScalarType.Int32, device: device).view(seqs.Length, 3);
        var scales = tensor(new[] { 0.75f, 1.5f }, device: device);
        var result = full(batch.NumTokens, numHeads * headDim, NaN, dtype: ScalarType.BFloat16, device: device);
        var sinks = withSinks ? Sinks(numHeads, ScalarType.BFloat16) : null;
        kernels.PagedPrefillAttention(qkv, keys, values, prefills, seqs.Max(s => s.New), buffers.BlockTables(seqs.Length),
            buffers.ContextLengths(seqs.Length), scales, result, window > 0 ? window : null, sinks);
        stream.Synchronize();

        var (k64, v64) = (KVPoolValues.Decoded(keys, cacheDtype) * 0.75, KVPoolValues.Decoded(values, cacheDtype) * 1.5);
        var q = qkv.narrow(1, 0, numHeads * headDim).to(ScalarType.Float64);
        var expected = new List<Tensor>();
        for (var s = 0; s < seqs.Length; s++)
            for (var i = 0; i < seqs[s].New; i++)
            {
                var position = seqs[s].Cached + i;   // sees positions 0 .. position
                expected.Add(Reference(q[batch.QueryStarts[s] + i].unsqueeze(0), k64, v64, [position + 1], [tables[s]], numHeads, numKVHeads, headDim, window, sinks, softcap));
            }
        var relative = ((result.to(ScalarType.Float64) - cat(expected, 0)).norm() / cat(expected, 0).norm()).item<double>();
        output.WriteLine($"prefill {dtype}: {numHeads}/{numKVHeads} heads, dim {headDim}, window {window}, sinks {withSinks}, softcap {softcap}: relative error {relative:E2}");
        Assert.True(relative < 1e-2, $"relative error {relative}");
    }

    // Sinks of either sign around the scores' size (a unit query against unit keys scores ~N(0, 1)), some far above them
    // (a head that mostly attends to nothing), in the model's type as the checkpoint's are.
    static Tensor Sinks(int numHeads, ScalarType dtype) =>
        tensor(Enumerable.Range(0, numHeads).Select(h => h % 5 == 4 ? 6.0f : (h % 7 - 3) * 0.8f).ToArray(), device: CUDA).to(dtype);

    // window > 0: each query sees only its context's last `window` positions; sinks (numHeads): a logit per query head
    // that joins its softmax as a key without a value; softcap > 0: scores become softcap x tanh(score / softcap)
    static Tensor Reference(Tensor q, Tensor keys, Tensor values, int[] contexts, int[][] tables, int numHeads, int numKVHeads, int headDim,
        int window = 0, Tensor? sinks = null, double softcap = 0)
    {
        var rows = new List<Tensor>();
        for (var s = 0; s < contexts.Length; s++)
        {
            var seen = window > 0 ? Math.Max(0, contexts[s] - window) : 0;
            var slots = tensor(Enumerable.Range(seen, contexts[s] - seen).Select(t => (long)tables[s][t / BlockSize] * BlockSize + t % BlockSize).ToArray(), device: q.device);
            var k = keys.view(-1, numKVHeads, headDim).index_select(0, slots).to(ScalarType.Float64).permute(1, 2, 0);   // (G, D, C)
            var v = values.view(-1, numKVHeads, headDim).index_select(0, slots).to(ScalarType.Float64).permute(1, 0, 2); // (G, C, D)
            var grouped = q[s].to(ScalarType.Float64).view(numKVHeads, numHeads / numKVHeads, headDim);                  // (G, group, D)
            var scores = grouped.matmul(k) / Math.Sqrt(headDim);                                                         // (G, group, C)
            if (softcap > 0) scores = (scores / softcap).tanh() * softcap;
            var p = sinks is null ? nn.functional.softmax(scores, -1)
                : nn.functional.softmax(cat([scores, sinks.to(ScalarType.Float64).view(numKVHeads, -1, 1)], -1), -1).narrow(-1, 0, scores.size(-1));
            rows.Add(p.matmul(v).reshape(1, numHeads * headDim));
        }
        return cat(rows, 0);
    }
}
