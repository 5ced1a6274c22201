using Serving.Engine;
using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Model.Backends;
using Serving.Tests.Shared;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Serving.Bench;

/// One comparison of a fused kernel against plain TorchSharp ops: relative error ‖out − ref‖ / ‖ref‖, max
/// absolute error, and whether every output element was written (outputs are poisoned with NaN first).
internal sealed record CheckResult(string Name, string Dtype, double RelativeError, double MaxAbsError, double Tolerance)
{
    public bool Passed => RelativeError <= Tolerance;

    public static CheckResult Compare(string name, Tensor actual, Tensor expected, double tolerance)
    {
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        var relative = (a - e).norm().item<double>() / Math.Max(e.norm().item<double>(), 1e-30);
        var maxAbs = (a - e).abs().max().item<double>();
        return new CheckResult(name, actual.dtype.ToString(), double.IsNaN(relative) ? double.PositiveInfinity : relative, maxAbs, tolerance);
    }
}

/// Checks each fused kernel on fresh random inputs against the same computation in plain ops (float64
/// reference for attention). Tolerances: float32 1e-5 (1e-4 for attention's fast exp), bfloat16 1e-2.
internal sealed class KernelChecks(FusedKernels kernels, ModelConfig config, Device device)
{
    readonly ScalarType _dtype = kernels.Shape.Dtype;
    readonly KVCacheDtype _cacheDtype = kernels.Shape.CacheDtype;
    /// What an output buffer holds before a kernel writes it (FP8's NaN is the byte 0xFF), so an element left unwritten fails.
    static readonly Scalar NaN = double.NaN.ToScalar(), Fp8NaN = 0xFF.ToScalar();
    double Tolerance => _dtype == ScalarType.Float32 ? 1e-5 : 1e-2;
    // what one stored K/V element can be off by, relative: exact for float pools of the model's type, 2^-8 for
    // bf16, 2^-4 for FP8's 3 mantissa bits (norm-relative errors come out about half of that)
    double PoolTolerance => _cacheDtype.IsFp8 ? 5e-2 : _cacheDtype.Storage == _dtype ? Tolerance : 1e-2;

    public IEnumerable<CheckResult> RunAll(Random random)
    {
        yield return Norm(addResidual: false);
        yield return Norm(addResidual: true);
        foreach (var result in Rope(random))
        {
            yield return result;
        }

        yield return SiluMul();
        foreach (var contexts in new[] { new[] { 1, 17, 64, 65, 700 }, new[] { 4097, 33 }, Enumerable.Repeat(2048, 8).ToArray() })
        {
            foreach (var concurrentBlocks in new[] { 1, 1000 })
            {
                yield return Attention(contexts, concurrentBlocks, random);
            }
        }
    }

    CheckResult Norm(bool addResidual)
    {
        using var scope = NewDisposeScope();
        var (x, residual, weight) = (Randn(37, config.HiddenSize), Randn(37, config.HiddenSize), Randn(config.HiddenSize));
        var output = full(37, config.HiddenSize, NaN, dtype: _dtype, device: device);
        var expectedResidual = addResidual ? residual.add(x, HeldScalars.One) : x;
        // the family's norm (its weight's rounding, cohere's centering) as the plain backend computes it
        var expected = TorchOps.RmsNorm(expectedResidual, weight, config.RmsNormEps, config.NormWeight, config.NormsCentered);
        if (addResidual)
        {
            kernels.AddRmsNorm(residual, x, weight, output, (float)config.RmsNormEps);
            return CheckResult.Compare("add+rmsnorm", cat([output, residual], 1), cat([expected, expectedResidual], 1), Tolerance);
        }

        kernels.RmsNorm(x, weight, output, (float)config.RmsNormEps);
        return CheckResult.Compare("rmsnorm", output, expected, Tolerance);
    }

    IEnumerable<CheckResult> Rope(Random random)
    {
        using var scope = NewDisposeScope();
        var (h, g, d, n, blockSize) = (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, 29, 16);
        var qkv = Randn(n, (h + 2 * g) * d);
        var original = qkv.clone();
        var positions = tensor(Enumerable.Range(0, n).Select(_ => random.Next(4000)).ToArray(), device: device);
        var slotList = Enumerable.Range(0, 64 * blockSize).OrderBy(_ => random.Next()).Take(n).ToArray();
        var slots = tensor(slotList, device: device);
        var (keys, values) = (EmptyPool(64, blockSize, g, d), EmptyPool(64, blockSize, g, d));
        var scales = tensor(new[] { 0.5f, 0.25f }, device: device);
        using var rope = new RopeTable(config.Rope, config.RotaryDim, 4096, device);
        kernels.RopeAndWriteKV(qkv, positions, slots, rope.Cos, rope.Sin, scales, keys, values);

        var parts = original.split([h * d, g * d, g * d], 1);
        // the family's rotary embedding (halves or interleaved pairs, over RotaryDim) as the plain backend computes it
        var cos = rope.Cos.index_select(0, positions.to(ScalarType.Int64)).unsqueeze(1);
        var sin = rope.Sin.index_select(0, positions.to(ScalarType.Int64)).unsqueeze(1);
        Tensor Rotate(Tensor x) => TorchOps.Rotate(x, cos, sin, config.RotaryDim, config.InterleavedRope, config.RotaryPrecision);
        var expectedQ = Rotate(parts[0].view(n, h, d)).view(n, h * d);
        var expectedK = Rotate(parts[1].view(n, g, d)).view(n, g * d);
        var slotIndex = slots.to(ScalarType.Int64);
        yield return CheckResult.Compare("rope q,k in place", qkv.narrow(1, 0, (h + g) * d), cat([expectedQ, expectedK], 1), Tolerance);
        yield return CheckResult.Compare($"rope k,v into {_cacheDtype} pool",
            cat([HeldScalars.Multiply(Decoded(keys).view(-1, g * d).index_select(0, slotIndex), 0.5),
                HeldScalars.Multiply(Decoded(values).view(-1, g * d).index_select(0, slotIndex), 0.25)], 1),
            cat([expectedK, parts[2]], 1).to(ScalarType.Float64), PoolTolerance);
    }

    CheckResult SiluMul()
    {
        using var scope = NewDisposeScope();
        var gateUp = Randn(23, 2 * config.IntermediateSize);
        var output = full(23, config.IntermediateSize, NaN, dtype: _dtype, device: device);
        kernels.SiluMul(gateUp, output);
        var halves = gateUp.chunk(2, -1);
        return CheckResult.Compare("silu*up", output, silu(halves[0]) * halves[1], Tolerance);
    }

    // Decode attention over scattered blocks for the given context lengths; concurrentBlocks steers the plan
    // (1: no split at these batch sizes, 1000: split for long contexts), so both kernel paths are covered.
    CheckResult Attention(int[] contexts, int concurrentBlocks, Random random)
    {
        using var scope = NewDisposeScope();
        var (h, g, d, blockSize) = (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, 16);
        var numBlocks = contexts.Sum(c => (c + blockSize - 1) / blockSize) + 3;
        var batch = StepBatch.Build(Enumerable.Repeat(1, contexts.Length).ToArray(), contexts, blockSize, numBlocks, 1, random);
        var (keys, values) = (RandomPool(numBlocks, blockSize, g, d), RandomPool(numBlocks, blockSize, g, d));
        var scales = tensor(new[] { 0.75f, 1.5f }, device: device);
        var qkv = Randn(contexts.Length, (h + 2 * g) * d);                          // the query is read in place at qkv's stride
        using var buffers = new DeviceStepBuffers(batch.NumTokens, batch.NumSeqs, batch.MaxBlocksPerSeq, device);
        var plan = kernels.PlanDecode(contexts.Length, contexts.Max(), concurrentBlocks);
        buffers.Upload(batch, Enumerable.Range(0, batch.NumSeqs).ToArray(), plan.PartitionSizeFor(contexts.Max()));
        var workspace = empty(plan.WorkspaceElements(h, d), ScalarType.Float32, device);
        var output = full(contexts.Length, h * d, NaN, dtype: _dtype, device: device);
        kernels.PagedDecodeAttention(qkv, keys, values, buffers.DecodeSeqs(batch.NumSeqs), buffers.TokenRows(batch.NumSeqs),
            buffers.BlockTables(batch.NumSeqs), buffers.ContextLengths(batch.NumSeqs), buffers.PartitionSize, scales, plan, output, workspace);
        var expected = ReferenceAttention(qkv.narrow(1, 0, h * d), HeldScalars.Multiply(Decoded(keys), 0.75),
            HeldScalars.Multiply(Decoded(values), 1.5), batch);
        var name = $"attention over a {_cacheDtype} pool ctx [{string.Join(",", contexts.Distinct())}] x{contexts.Length}, {plan.NumPartitions} part";
        return CheckResult.Compare(name, output, expected, _dtype == ScalarType.Float32 ? 1e-4 : 1e-2);
    }

    Tensor ReferenceAttention(Tensor q, Tensor keys, Tensor values, StepInputs batch)
    {
        var (h, g, d) = (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim);
        var rows = new List<Tensor>();
        for (var s = 0; s < batch.NumSeqs; s++)
        {
            var slots = tensor(Enumerable.Range(0, batch.ContextLengths[s]).Select(t => (long)SlotMapping.Slot(batch.BlockTables[s], t, batch.BlockSize)).ToArray(), device: device);
            var k = keys.view(-1, g, d).index_select(0, slots).permute(1, 2, 0);                          // (G, D, C) float64
            var v = values.view(-1, g, d).index_select(0, slots).permute(1, 0, 2);                        // (G, C, D)
            var qs = q[s].to(ScalarType.Float64).view(g, h / g, d);                                        // (G, group, D)
            var scores = HeldScalars.Multiply(qs.matmul(k), kernels.AttentionScale);                      // (G, group, C)
            var cap = kernels.Shape.AttentionSoftcap;                                                      // gemma2's
            var p = softmax(cap > 0 ? HeldScalars.Multiply(HeldScalars.Divide(scores, cap).tanh(), cap) : scores, -1);
            rows.Add(p.matmul(v).reshape(1, h * d));
        }

        return cat(rows, 0);
    }

    Tensor Randn(params long[] shape) => randn(shape, dtype: _dtype, device: device);

    // a pool of the kernels' cache type that a write must fill: NaN where the type has it, 0xFF (NaN) for FP8
    Tensor EmptyPool(params long[] shape) => _cacheDtype.IsFp8
        ? full(shape, Fp8NaN, dtype: ScalarType.Byte, device: device)
        : full(shape, NaN, dtype: _cacheDtype.Storage, device: device);

    Tensor RandomPool(params long[] shape) => KVPoolValues.Random(_cacheDtype, shape, device);

    Tensor Decoded(Tensor pool) => KVPoolValues.Decoded(pool, _cacheDtype);
}
