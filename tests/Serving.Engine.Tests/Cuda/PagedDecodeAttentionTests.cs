using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Model.Backends;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// The paged decode attention kernel against float64 attention over the same scattered blocks, with and
/// without the split over context partitions, for GQA, MHA and MQA groupings.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class PagedDecodeAttentionTests(ITestOutputHelper output)
{
    const int BlockSize = 16;

    [GpuTheory]
    [InlineData(32, 8, 128, 1)]      // GQA, one partition per sequence
    [InlineData(32, 8, 128, 1000)]   // GQA, split into many partitions
    [InlineData(8, 8, 64, 1000)]     // MHA
    [InlineData(16, 1, 128, 1000)]   // MQA: 16 query heads on one KV head
    public void MatchesFloat64Attention(int numHeads, int numKVHeads, int headDim, int concurrentBlocks)
    {
        int[] contexts = [1, 17, 64, 65, 700, 4097];
        var device = CUDA;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var kernels = new FusedKernels(CudaDevice.Open(0), stream.Handle,
            new KernelShape(ScalarType.Float32, KVCacheDtype.Float32, headDim, headDim, numHeads, numKVHeads));
        using var scope = NewDisposeScope();
        var numBlocks = contexts.Sum(c => (c + BlockSize - 1) / BlockSize);
        var blocks = Enumerable.Range(0, numBlocks).OrderBy(b => (b * 7919) % numBlocks).ToArray();  // scattered
        var tables = new int[contexts.Length][];
        for (int s = 0, next = 0; s < contexts.Length; next += tables[s].Length, s++)
            tables[s] = blocks[next..(next + (contexts[s] + BlockSize - 1) / BlockSize)];
        var batch = StepInputs.Build(contexts.Select((c, s) => new StepSequence(new int[c], c - 1, 1, tables[s])).ToList(), BlockSize);
        var keys = randn(numBlocks, BlockSize, numKVHeads, headDim, device: device);
        var values = randn(numBlocks, BlockSize, numKVHeads, headDim, device: device);
        var qkv = randn(contexts.Length, (numHeads + 2 * numKVHeads) * headDim, device: device);
        using var buffers = new DeviceStepBuffers(batch.NumTokens, batch.NumSeqs, batch.MaxBlocksPerSeq, device);
        var plan = DecodeAttentionPlan.Create(contexts.Length, contexts.Max(), numKVHeads, concurrentBlocks);
        buffers.Upload(batch, Enumerable.Range(0, batch.NumSeqs).ToArray(), plan.PartitionSizeFor(contexts.Max()));
        var workspace = empty(plan.WorkspaceElements(numHeads, headDim), ScalarType.Float32, device);
        var result = full(contexts.Length, numHeads * headDim, double.NaN, device: device);   // poisoned: every element must be written
        var n = batch.NumSeqs;
        kernels.PagedDecodeAttention(qkv, keys, values, buffers.DecodeSeqs(n), buffers.TokenRows(n), buffers.BlockTables(n),
            buffers.ContextLengths(n), buffers.PartitionSize, ones(2, device: device), plan, result, workspace);
        stream.Synchronize();

        var expected = Reference(qkv.narrow(1, 0, numHeads * headDim), keys, values, contexts, tables, numHeads, numKVHeads, headDim);
        var relative = ((result.to(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
        output.WriteLine($"{numHeads}/{numKVHeads} heads, dim {headDim}, {plan.NumPartitions} partitions: relative error {relative:E2}");
        Assert.True(relative < 1e-5, $"relative error {relative}");
    }

    static Tensor Reference(Tensor q, Tensor keys, Tensor values, int[] contexts, int[][] tables, int numHeads, int numKVHeads, int headDim)
    {
        var rows = new List<Tensor>();
        for (var s = 0; s < contexts.Length; s++)
        {
            var slots = tensor(Enumerable.Range(0, contexts[s]).Select(t => (long)tables[s][t / BlockSize] * BlockSize + t % BlockSize).ToArray(), device: q.device);
            var k = keys.view(-1, numKVHeads, headDim).index_select(0, slots).to(ScalarType.Float64).permute(1, 2, 0);   // (G, D, C)
            var v = values.view(-1, numKVHeads, headDim).index_select(0, slots).to(ScalarType.Float64).permute(1, 0, 2); // (G, C, D)
            var grouped = q[s].to(ScalarType.Float64).view(numKVHeads, numHeads / numKVHeads, headDim);                  // (G, group, D)
            var p = nn.functional.softmax(grouped.matmul(k) / Math.Sqrt(headDim), -1);                                   // (G, group, C)
            rows.Add(p.matmul(v).reshape(1, numHeads * headDim));
        }
        return cat(rows, 0);
    }
}
