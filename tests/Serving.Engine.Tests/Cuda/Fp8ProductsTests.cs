using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using TorchSharp;
using Xunit.Abstractions;
using static Serving.Engine.Tests.Execution.EngineTestHelpers;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// FP8 weights (--quantization fp8, Fp8Products): the quantization kernels give each element the nearest e4m3 of
/// x / scale with scale = max |x| / 448, a product is the float64 product of its two quantized operands (within the
/// output's bfloat16 rounding), and a model's FP8 projections keep its logits and greedy tokens close to its own, with
/// graph replays that equal the eager steps.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class Fp8ProductsTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    /// A product is the float64 product of the stored weight (each element the nearest e4m3 of weight / scale) and its
    /// input: as it is at up to 8 rows (the few-rows kernel, W8A16), quantized the same way per tensor at more
    /// (cuBLASLt, W8A8); within the output's bfloat16 rounding. 6144 outputs are 384 few-rows blocks, which a GPU of
    /// 132 SMs (H100, H200) runs on the kernel's lean build.
    [GpuTheory]
    [InlineData(1, 1024, 768)]
    [InlineData(5, 1024, 768)]
    [InlineData(8, 1536, 768)]    // x a view: rows 1536 elements apart
    [InlineData(1, 1024, 6144)]
    [InlineData(8, 1024, 6144)]
    [InlineData(9, 1024, 768)]
    [InlineData(64, 1536, 768)]
    [InlineData(300, 1024, 768)]
    public void AProductIsTheProductOfItsQuantizedOperands(int m, int ldx, int n)
    {
        const int k = 1024;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var products = new Fp8Products(CUDA, ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        var weight = (randn(n, k, ScalarType.Float32, CUDA) * 0.05).to_type(ScalarType.BFloat16);
        var x = randn(m, ldx, ScalarType.BFloat16, CUDA).narrow(1, 0, k);
        var bias = randn(n, ScalarType.BFloat16, CUDA);
        using var fp8 = products.QuantizeWeight(weight);
        var y = products.Linear(x, fp8, bias).to_type(ScalarType.Float64).cpu();
        stream.Synchronize();

        var weightValues = weight.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
        var weightScale = fp8.Scale.cpu().item<float>();
        Assert.Equal(weightValues.Max(Math.Abs) / 448f, weightScale, 1e-6f * weightScale);
        var stored = E4M3.Decode(fp8.Values.cpu().data<byte>().ToArray());
        var inverse = 1f / weightScale;
        for (var i = 0; i < stored.Length; i++)
            Assert.True(E4M3.IsNearest(weightValues[i] * inverse, stored[i]), $"element {i}: {weightValues[i] * inverse} stored as {stored[i]}");

        // the input as the product takes it (few rows: as it is; else quantized as the kernels do), then the product in
        // float64
        var xValues = x.to_type(ScalarType.Float32).contiguous().cpu().data<float>().ToArray();
        var xScale = Math.Max(xValues.Max(Math.Abs) / 448f, 1f / (448f * 512f));
        var xInverse = 1f / xScale;
        var xQuantized = Fp8Products.FewRowsTake(m, k)
            ? xValues.Select(v => (double)v).ToArray()
            : xValues.Select(v => (double)E4M3.Nearest(v * xInverse) * xScale).ToArray();
        var expected = tensor(xQuantized, ScalarType.Float64).view(m, k)
            .matmul(tensor(stored.Select(v => (double)v * weightScale).ToArray(), ScalarType.Float64).view(n, k).t())
            + bias.to_type(ScalarType.Float64).cpu();
        var difference = (y - expected).abs();
        var exact = x.to_type(ScalarType.Float64).cpu().matmul(weight.to_type(ScalarType.Float64).cpu().t()) + bias.to_type(ScalarType.Float64).cpu();
        var relativeToUnquantized = ((y - exact).norm() / exact.norm()).item<double>();
        output.WriteLine($"m={m} ldx={ldx} n={n}: max |y - quantized product| {difference.max().item<double>():E2}; " +
            $"|y - bf16 product| / |bf16 product| = {relativeToUnquantized:P2}");
        Assert.True(difference.le(expected.abs() * 1e-2 + 2e-2).all().item<bool>(), $"max |y - quantized product| = {difference.max().item<double>():E2}");
        Assert.InRange(relativeToUnquantized, 0, 0.08);
    }

    /// A weight with a scale per output channel (an FP8 checkpoint's, given as the scales it was stored with) keeps its
    /// values exactly as they were stored, through their bfloat16 dequantization; a product is the float64 product of
    /// those and its input: as it is at up to 8 rows, quantized per token at more where cuBLASLt takes vectors of scales
    /// (outerVectors, and the library has them), else per tensor with y scaled per channel after the product; within the
    /// output's bfloat16 rounding.
    [GpuTheory]
    [InlineData(1, true)]
    [InlineData(8, true)]
    [InlineData(9, true)]
    [InlineData(64, true)]
    [InlineData(300, true)]
    [InlineData(9, false)]
    [InlineData(64, false)]
    public void AProductScaledPerChannelIsTheProductOfItsStoredOperands(int m, bool outerVectors)
    {
        const int n = 768, k = 1024;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var products = new Fp8Products(CUDA, ScalarType.BFloat16) { OuterVectorScales = outerVectors };
        output.WriteLine($"cuBLASLt's vectors of scales: {products.RowScalesRefusal ?? "taken"}");
        outerVectors &= products.RowScalesRefusal is null;   // a library without them runs the other way
        using var scope = NewDisposeScope();
        // a checkpoint's weight: rows of very different magnitudes, each stored as e4m3 of weight / (its largest / 448)
        var original = (randn(n, k, ScalarType.Float32) * exp(randn(n, 1, ScalarType.Float32) * 2) * 0.05).data<float>().ToArray();
        var scales = Enumerable.Range(0, n).Select(r => original.Skip(r * k).Take(k).Max(Math.Abs) / 448f).ToArray();
        var codes = original.Select((v, i) => E4M3.Encode(v / scales[i / k])).ToArray();
        var stored = E4M3.Decode(codes);
        var dequantized = tensor(stored.Select((v, i) => v * scales[i / k]).ToArray()).view(n, k).to_type(ScalarType.BFloat16).cuda();
        using var fp8 = products.QuantizeWeight(dequantized, tensor(scales).view(n, 1));
        Assert.True(fp8.PerChannel);
        Assert.Equal(codes, fp8.Values.cpu().data<byte>().ToArray());
        Assert.Equal(scales, fp8.Scale.cpu().data<float>().ToArray());

        var x = (randn(m, k, ScalarType.Float32) * exp(randn(m, 1, ScalarType.Float32))).to_type(ScalarType.BFloat16).cuda();
        var y = products.Linear(x, fp8, null).to_type(ScalarType.Float64).cpu();
        stream.Synchronize();
        var xValues = x.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
        double[] Quantized(int first, int count)
        {
            var xScale = Math.Max(xValues.Skip(first).Take(count).Max(Math.Abs) / 448f, 1f / (448f * 512f));
            return xValues.Skip(first).Take(count).Select(v => (double)E4M3.Nearest(v * (1f / xScale)) * xScale).ToArray();
        }
        var xTaken = Fp8Products.FewRowsTake(m, k) ? xValues.Select(v => (double)v).ToArray()
            : outerVectors ? Enumerable.Range(0, m).SelectMany(r => Quantized(r * k, k)).ToArray()
            : Quantized(0, m * k);
        var expected = tensor(xTaken, ScalarType.Float64).view(m, k)
            .matmul(tensor(stored.Select((v, i) => (double)v * scales[i / k]).ToArray(), ScalarType.Float64).view(n, k).t());
        var difference = (y - expected).abs();
        output.WriteLine($"m={m} outer vectors {outerVectors}: max |y - stored product| {difference.max().item<double>():E2}");
        // within bfloat16's rounding of y and float32 sums, against each token's largest output
        Assert.True(difference.le(expected.abs() * 1e-2 + expected.abs().amax([1], keepdim: true) * 1e-2).all().item<bool>(),
            $"max |y - stored product| = {difference.max().item<double>():E2}");
    }

    /// A weight with a scale per 128 x 128 block (DeepSeek's and Qwen's -FP8, given as the scales it was stored with,
    /// by row and group of 128 columns) keeps its values exactly as they were stored and its blocks' scales (rows
    /// padded to 4 with 1s, cuBLASLt's layout); a product is the float64 product of those and its input: as it is at up
    /// to 8 rows (the few-rows kernel scales each chunk by its block's), quantized per token and 128 columns at more
    /// (cuBLASLt's block scaling); within the output's bfloat16 rounding. The GPUs the server is built for (sm_90,
    /// cuBLASLt 12.9 and later) take blocks of scales.
    [GpuTheory]
    [InlineData(1, 768)]
    [InlineData(5, 768)]
    [InlineData(8, 768)]
    [InlineData(1, 6144)]   // 384 few-rows blocks: the lean build on 132 SMs
    [InlineData(9, 768)]
    [InlineData(64, 768)]
    [InlineData(300, 768)]
    public void AProductScaledPerBlockIsTheProductOfItsStoredOperands(int m, int n)
    {
        const int k = 1280, groups = k / 128;   // 10 groups: the scales' rows padded to 12
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var products = new Fp8Products(CUDA, ScalarType.BFloat16);
        output.WriteLine($"cuBLASLt's blocks of scales: {products.BlockScalesRefusal ?? "taken"}");
        if (CudaDevice.Open(0).ComputeCapability < 90) return;   // sm_89's cuBLASLt has no block scaling: such weights stay 16-bit
        Assert.Null(products.BlockScalesRefusal);
        using var scope = NewDisposeScope();
        // a checkpoint's weight: blocks of very different magnitudes, each stored as e4m3 of weight / (its largest / 448)
        var magnitudes = exp(randn(n / 128, groups, ScalarType.Float32) * 2).repeat_interleave(128, 0).repeat_interleave(128, 1);
        var original = (randn(n, k, ScalarType.Float32) * magnitudes * 0.05).data<float>().ToArray();
        var blockScales = new float[n / 128, groups];
        for (var i = 0; i < original.Length; i++)
            blockScales[i / k / 128, i % k / 128] = Math.Max(blockScales[i / k / 128, i % k / 128], Math.Abs(original[i]) / 448f);
        float ScaleOf(int i) => blockScales[i / k / 128, i % k / 128];
        var codes = original.Select((v, i) => E4M3.Encode(v / ScaleOf(i))).ToArray();
        var stored = E4M3.Decode(codes);
        var dequantized = tensor(stored.Select((v, i) => v * ScaleOf(i)).ToArray()).view(n, k).to_type(ScalarType.BFloat16).cuda();
        var byRowAndGroup = tensor(blockScales.Cast<float>().ToArray()).view(n / 128, groups).repeat_interleave(128, 0);
        Assert.True(products.TakesStoredScales(n, k, byRowAndGroup));
        using var fp8 = products.QuantizeWeight(dequantized, byRowAndGroup);
        Assert.Equal(Fp8Scaling.PerBlock, fp8.Scaling);
        Assert.Equal(codes, fp8.Values.cpu().data<byte>().ToArray());
        Assert.Equal([n / 128, 12], fp8.Scale.shape);
        Assert.Equal(blockScales.Cast<float>().ToArray(), fp8.Scale.narrow(1, 0, groups).cpu().contiguous().data<float>().ToArray());
        Assert.True(fp8.Scale.narrow(1, groups, 12 - groups).eq(HeldScalars.One).all().item<bool>(), "the padding scales are 1");

        var x = (randn(m, k, ScalarType.Float32) * exp(randn(m, groups, ScalarType.Float32)).repeat_interleave(128, 1)).to_type(ScalarType.BFloat16).cuda();
        var y = products.Linear(x, fp8, null).to_type(ScalarType.Float64).cpu();
        stream.Synchronize();
        var xValues = x.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
        // each token's 128 columns quantized by their own scale where cuBLASLt runs the product
        double[] Group(int first)
        {
            var part = xValues.Skip(first).Take(128).ToArray();
            var xScale = Math.Max(part.Max(Math.Abs) / 448f, 1f / (448f * 512f));
            return part.Select(v => (double)E4M3.Nearest(v * (1f / xScale)) * xScale).ToArray();
        }
        var xTaken = Fp8Products.FewRowsTake(m, k) ? xValues.Select(v => (double)v).ToArray()
            : Enumerable.Range(0, m * groups).SelectMany(g => Group(g * 128)).ToArray();
        var expected = tensor(xTaken, ScalarType.Float64).view(m, k)
            .matmul(tensor(stored.Select((v, i) => (double)v * ScaleOf(i)).ToArray(), ScalarType.Float64).view(n, k).t());
        var difference = (y - expected).abs();
        output.WriteLine($"m={m}: max |y - stored product| {difference.max().item<double>():E2}");
        Assert.True(difference.le(expected.abs() * 1e-2 + expected.abs().amax([1], keepdim: true) * 1e-2).all().item<bool>(),
            $"max |y - stored product| = {difference.max().item<double>():E2}");
    }

    /// Tuned at batch sizes 8, 16 and 64 over three weights of a shape: every batch size cuBLASLt runs is measured (8
    /// rows are the few-rows kernel's), and a product of M rows (a tuned size or between them, or past the largest)
    /// equals the untuned product of the same operands (cuBLASLt's first choice) within bfloat16 rounding, and runs the
    /// same way twice (M's choice is fixed).
    [GpuFact]
    public void TunedProductsEqualTheFirstChoicesWithinRounding()
    {
        const int n = 4096, k = 2048;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var products = new Fp8Products(CUDA, ScalarType.BFloat16);
        using var untuned = new Fp8Products(CUDA, ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        var weights = Enumerable.Range(0, 3).Select(_ => products.QuantizeWeight((randn(n, k, ScalarType.Float32, CUDA) * 0.05).to_type(ScalarType.BFloat16))).ToList();
        try
        {
            products.Tune(weights, [8, 16, 64]);
            Assert.Equal([16, 64], products.TuningResults.Select(r => r.BatchSize).Order());
            foreach (var r in products.TuningResults)
                output.WriteLine($"M={r.BatchSize}: first choice {r.DefaultMicroseconds:F1} us, best {r.BestMicroseconds:F1} us of {r.Candidates}, another chosen: {r.Chosen}");
            foreach (var m in new[] { 1, 8, 9, 16, 37, 64, 100 })
            {
                var x = randn(m, k, ScalarType.BFloat16, CUDA);
                var y = products.Linear(x, weights[1], null).to_type(ScalarType.Float32);
                var expected = untuned.Linear(x, weights[1], null).to_type(ScalarType.Float32);
                var difference = (y - expected).abs();
                Assert.True(difference.le(expected.abs() * 1e-2 + 1e-2).all().item<bool>(), $"M={m}: max |tuned - first choice| = {difference.max().item<float>():E2}");
                var again = products.Linear(x, weights[1], null).to_type(ScalarType.Float32);
                Assert.True(y.equal(again).all().item<bool>(), $"M={m}: the same product twice");
            }
        }
        finally
        {
            stream.Synchronize();
            foreach (var w in weights) w.Dispose();
        }
    }

    /// A fixture in bfloat16 with its projections quantized to FP8 against the same in bfloat16: last-position logits
    /// close, greedy tokens 8 or more of the bfloat16 model's, or parting where its own top two are within 0.5 (about twice
    /// the largest last-position logit difference FP8 weights make on these fixtures, 0.22 on an H100).
    [GpuTheory, MemberData(nameof(Models))]
    public void Fp8ProjectionsStayCloseToTheModelsOwn(string fixture)
    {
        const double nearTie = 0.5;
        using var bf16 = ModelLoader.Load(Fixtures.Dir(fixture), "bfloat16", CUDA);
        using var fp8 = ModelLoader.Load(Fixtures.Dir(fixture), "bfloat16", CUDA);
        var bytes = fp8.WeightBytes;
        var quantized = fp8.QuantizeWeightsToFp8();
        output.WriteLine($"{fixture}: {quantized} projections FP8, weights {bytes} -> {fp8.WeightBytes} bytes");
        Assert.True(fp8.WeightsFp8);
        Assert.Equal(4 * bf16.Config.NumHiddenLayers, quantized);   // qkv, o, gate_up, down of every layer
        Assert.True(fp8.WeightBytes < bytes);
        using var bf16Cache = bf16.CreateKVCache(numBlocks: 64, blockSize: 16);
        using var fp8Cache = fp8.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in Fixtures.Reference(fixture).Prompts)
        {
            var (reference, quantizedRunner) = (new PagedRunner(bf16, bf16Cache), new PagedRunner(fp8, fp8Cache));
            var expected = reference.Step([(reference.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            var actual = quantizedRunner.Step([(quantizedRunner.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
            var correlation = Correlation(expected, actual);
            var referenceTokens = reference.Greedy(reference.Add(prompt.InputIds), 16);
            var tokens = quantizedRunner.Greedy(quantizedRunner.Add(prompt.InputIds), 16);
            var agree = tokens.Zip(referenceTokens).TakeWhile(p => p.First == p.Second).Count();
            var gap = agree == 16 ? 0 : Gap(bf16, bf16Cache, prompt.InputIds.Concat(referenceTokens.Take(agree)), referenceTokens[agree], tokens[agree]);
            output.WriteLine($"{fixture} '{prompt.Text}': logit correlation {correlation:F5}, max |fp8 - bf16| " +
                $"{expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max():F3}; {agree}/16 greedy tokens (gap {gap:F3})");
            Assert.True(correlation > 0.99, $"logit correlation {correlation}");
            Assert.True(agree >= 8 || gap < nearTie, $"{agree}/16 greedy tokens, bf16 gap {gap}");
        }
    }

    /// The tiny preset with FP8 projections, decode steps captured as CUDA graphs: a replay of a step that fills its
    /// bucket gives the eager step's logits bit for bit (the same rows, so the same input scales and kernels); a padded
    /// replay's padding rows take part in the inputs' per-tensor scales (as in vLLM), so it is close, not equal.
    [GpuFact]
    public void CapturedFp8DecodeStepsReplayWithTheEagerResult()
    {
        using var model = ModelLoader.Load("tiny-gqa", "auto", CUDA);
        model.QuantizeWeightsToFp8();
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        model.CaptureDecodeGraphs(cache, [1, 2, 4, 8]);
        var random = new Random(7);
        using var scope = NewDisposeScope();
        foreach (var contexts in new[] { new[] { 33 }, [5, 90], [1, 700, 65, 9], [3, 17, 40, 60, 80, 100, 120, 140], [20, 30, 40] })
        {
            var blocks = Enumerable.Range(0, 64).OrderBy(_ => random.Next()).ToArray();
            var next = 0;
            var sequences = contexts.Select(c =>
            {
                var table = blocks[next..(next += SlotMapping.BlocksFor(c, 16))];
                return new StepSequence(Enumerable.Range(0, c).Select(_ => random.Next(1000)).ToArray(), 0, c, table);
            }).ToList();
            model.UseCudaGraphs = false;
            model.Forward(StepInputs.Build(sequences.Where(s => s.NumNewTokens > 1).Select(s => s with { NumNewTokens = s.NumNewTokens - 1 }).ToList(), 16), cache);
            var decode = StepInputs.Build(sequences.Select(s => s with { StartPosition = s.NumNewTokens - 1, NumNewTokens = 1 }).ToList(), 16);
            model.UseCudaGraphs = true;
            var replayed = model.Forward(decode, cache).cpu();
            model.UseCudaGraphs = false;
            var eager = model.Forward(decode, cache).cpu();
            var difference = (replayed - eager).abs().max().item<float>();
            output.WriteLine($"{contexts.Length} sequences: max |replay - eager| = {difference:E2}");
            if (contexts.Length is 1 or 2 or 4 or 8)
                Assert.True(replayed.equal(eager).all().item<bool>(), "a replay that fills its bucket gives the eager step's logits bit for bit");
            else
                Assert.True(difference < 0.5f, $"a padded replay stays close: {difference}");
        }
    }

    /// A mixture with FP8 experts (online, stacked an allocation a kind): its steps never wait for the host (the experts'
    /// products read the groups on the device), so its decode steps are captured as CUDA graphs, and a replay gives the
    /// eager step's logits bit for bit (at most 8 rows a product: no input is quantized, padded or not).
    [GpuFact]
    public void AMixtureWithFp8ExpertsReplaysItsDecodeGraphs()
    {
        using var wide = new TempDirectory();
        Weights.QuantizedCheckpointTests.WideQwen3Moe(wide.Path);
        using var model = ModelLoader.Load(wide.Path, "bfloat16", CUDA, quantizeFp8: true);
        Assert.True(model.QuantizeWeightsToFp8() > 0);
        Assert.False(model.StepWaitsForTheHost);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        Model.Backends.CudaBackendTests.AssertReplaysAreEager(model, cache, [[5, 40, 17], [33], [1, 70, 65, 9, 128]], output.WriteLine);
    }

    /// Through the engine on CUDA: --quantization fp8 on the bf16 fixture, and FP8 checkpoints with a scale per tensor or
    /// per channel (compressed-tensors, strategy "tensor" or "channel") or per 128 x 128 block (fp8's weight_block_size,
    /// on the fixture widened to whole blocks) with no flag, are served with FP8 projections (ModelInfo.WeightStorage),
    /// their pools planned once the 16-bit weights went back, and decode; one with 32 x 48 blocks is served dequantized.
    /// A checkpoint served in FP8 stays close to itself dequantized to bf16.
    [GpuFact]
    public async Task TheEngineServesFp8Projections()
    {
        var prompt = Fixtures.Reference("llama-gqa").Prompts[0].InputIds;
        // a pool of 256 blocks, as the other engine tests on CUDA take: sized by --gpu-memory-utilization, the tiny
        // fixture's pool would hold millions of blocks, and the engine's start outlast the helper's minute
        await using (var online = await StartAsync("llama-gqa", o => o with { Device = "cuda", Dtype = "bfloat16", Quantization = "fp8", NumGpuBlocksOverride = 256 }))
        {
            Assert.Equal("fp8", online.Info.WeightStorage);
            Assert.Equal(16, (await CollectAsync(online, Greedy(prompt, 16))).Tokens().Length);
        }
        using var wide = new TempDirectory();
        Weights.QuantizedCheckpointTests.WideLlama(wide.Path);
        foreach (var (format, storage) in new[]
        {
            (Weights.QuantizedCheckpointTests.Format.TensorScale, "fp8"), (Weights.QuantizedCheckpointTests.Format.ChannelScale, "fp8"),
            (Weights.QuantizedCheckpointTests.Format.Block128ScaleInv, "fp8"), (Weights.QuantizedCheckpointTests.Format.BlockScaleInv, null),
        })
        {
            using var checkpoint = new TempDirectory();
            using var dequantized = new TempDirectory();
            var fixture = format == Weights.QuantizedCheckpointTests.Format.Block128ScaleInv ? wide.Path : Fixtures.Dir("llama-gqa");
            Weights.QuantizedCheckpointTests.Quantize(fixture, format, checkpoint.Path, dequantized.Path);
            await using (var engine = new LlmEngine(new EngineOptions { Model = checkpoint.Path, Dtype = "bfloat16", Device = "cuda", NumGpuBlocksOverride = 256 }))
            {
                await engine.WaitUntilReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal(storage, engine.Info.WeightStorage);
                Assert.Equal(16, (await CollectAsync(engine, Greedy(prompt, 16))).Tokens().Length);
            }
            if (storage is null) continue;
            using var fp8 = ModelLoader.Load(checkpoint.Path, "bfloat16", CUDA);
            Assert.True(fp8.KeepCheckpointFp8() > 0);
            using var bf16 = ModelLoader.Load(dequantized.Path, "bfloat16", CUDA);
            using var fp8Cache = fp8.CreateKVCache(numBlocks: 16, blockSize: 16);
            using var bf16Cache = bf16.CreateKVCache(numBlocks: 16, blockSize: 16);
            var (a, b) = (new PagedRunner(fp8, fp8Cache), new PagedRunner(bf16, bf16Cache));
            var correlation = Correlation(a.Step([(a.Add(prompt), prompt.Length)])[0], b.Step([(b.Add(prompt), prompt.Length)])[0]);
            output.WriteLine($"{format}: logit correlation with the checkpoint dequantized to bf16 {correlation:F5}");
            Assert.True(correlation > 0.99, $"logit correlation {correlation}");
        }
    }

    /// An FP8 checkpoint's projections served in FP8 hold the checkpoint's own bytes and scales: a fused projection's
    /// parts one after another, each with its scales (per tensor: the same on each of its rows; a projection of one
    /// tensor scaled per tensor keeps one scale; per 128 x 128 block: the parts' blocks one after another, rows padded
    /// to 4 scales), made back from the bfloat16 values they loaded as.
    [GpuTheory]
    [InlineData(Weights.QuantizedCheckpointTests.Format.TensorScale)]
    [InlineData(Weights.QuantizedCheckpointTests.Format.ChannelScale)]
    [InlineData(Weights.QuantizedCheckpointTests.Format.Block128ScaleInv)]
    public void AnFp8CheckpointIsServedWithItsOwnValuesAndScales(Weights.QuantizedCheckpointTests.Format format)
    {
        var blocks = format == Weights.QuantizedCheckpointTests.Format.Block128ScaleInv;
        using var wide = new TempDirectory();
        if (blocks) Weights.QuantizedCheckpointTests.WideLlama(wide.Path);
        using var directory = new TempDirectory();
        using var dequantized = new TempDirectory();
        Weights.QuantizedCheckpointTests.Quantize(blocks ? wide.Path : Fixtures.Dir("llama-gqa"), format, directory.Path, dequantized.Path);
        using var checkpoint = Serving.Engine.Weights.SafetensorsCheckpoint.Open(directory.Path);
        using var model = ModelLoader.LoadDecoder(directory.Path, "bfloat16", CUDA);
        // FP8 as they loaded
        var projections = model.named_modules().Where(m => m.module is Linear { Target: not null }).ToList();
        Assert.Equal(4 * model.Config.NumHiddenLayers, projections.Count);
        foreach (var (name, module) in projections)
        {
            var linear = (Linear)module;
            Assert.NotNull(linear.Fp8);
            var tensors = Weights.QuantizedCheckpointTests.CheckpointTensorsOf(name);
            var bytes = tensors.SelectMany<string, byte>(tensor => checkpoint.Read(tensor + ".weight").data<byte>().ToArray()).ToArray();
            Assert.Equal(bytes, linear.Fp8!.Values.cpu().data<byte>().ToArray());
            if (blocks)
            {
                var stored = cat(tensors.Select(tensor => checkpoint.Read(tensor + ".weight_scale_inv").to_type(ScalarType.Float32)).ToList(), 0);
                Assert.Equal(Fp8Scaling.PerBlock, linear.Fp8.Scaling);
                Assert.Equal(stored.data<float>().ToArray(), linear.Fp8.Scale.narrow(1, 0, stored.size(1)).cpu().contiguous().data<float>().ToArray());
                Assert.True(linear.Fp8.Scale.narrow(1, stored.size(1), linear.Fp8.Scale.size(1) - stored.size(1)).eq(HeldScalars.One).all().item<bool>());
                continue;
            }
            var scales = tensors.SelectMany(tensor => Weights.QuantizedCheckpointTests.RowScales(checkpoint, tensor)).ToArray();
            var kept = linear.Fp8.Scale.cpu().data<float>().ToArray();
            Assert.Equal(scales.Distinct().Count() == 1 ? [scales[0]] : scales, kept);
        }
        output.WriteLine($"{format}: {projections.Count} projections, their bytes and scales the checkpoint's");
    }

    /// An FP8 checkpoint served in FP8, and a 16-bit one under --quantization fp8 (online), load one projection at a
    /// time (Fp8ProjectionsAsLoaded): the driver's used memory, sampled through the load, never reaches the weights'
    /// size in bfloat16 (what a load through the 16-bit model holds at least), and the projections are FP8 once it has
    /// loaded; a mixture's experts (a layer's of one kind in 16 bits at a time) too.
    [GpuTheory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void AnFp8ModelLoadsWithoutItsSixteenBitSize(bool online, bool mixture)
    {
        using var wide = new TempDirectory();
        using var directory = new TempDirectory();
        using var dequantized = new TempDirectory();
        if (mixture) Weights.QuantizedCheckpointTests.WideQwen3Moe(wide.Path, hidden: 2048, experts: 16, width: 768, layers: 4);
        else Weights.QuantizedCheckpointTests.WideLlama(wide.Path, hidden: 2048, intermediate: 8192, layers: 4);
        if (!online)
            Weights.QuantizedCheckpointTests.Quantize(wide.Path, Weights.QuantizedCheckpointTests.Format.Block128ScaleInv, directory.Path, dequantized.Path);
        var device = CudaDevice.Open(0);
        CachedDeviceMemory.Release(CUDA);
        device.MakeCurrent();
        var before = CudaDriver.MemoryInfo().Free;
        var lowest = before;
        var loading = true;
        var sampler = new Thread(() =>
        {
            device.MakeCurrent();
            while (Volatile.Read(ref loading)) Interlocked.Exchange(ref lowest, Math.Min(Interlocked.Read(ref lowest), CudaDriver.MemoryInfo().Free));
        });
        sampler.Start();
        LoadedModel? model = null;
        try
        {
            model = ModelLoader.Load(online ? wide.Path : directory.Path, "bfloat16", CUDA, quantizeFp8: online);
        }
        finally
        {
            Volatile.Write(ref loading, false);
            sampler.Join();
        }
        using (model)
        {
            var (peak, fp8, unquantized) = (before - lowest, model.WeightBytes, model.UnquantizedWeightBytes);
            output.WriteLine($"{(online ? "online" : "FP8 checkpoint")}{(mixture ? " of a mixture of experts" : "")}: peak device memory through the load {peak >> 20} MiB; weights {fp8 >> 20} MiB, {unquantized >> 20} MiB in bfloat16");
            Assert.True(model.WeightsFp8 && fp8 < unquantized);
            Assert.True(peak < unquantized, $"the load held {peak >> 20} MiB, the weights take {unquantized >> 20} MiB in bfloat16");
        }
    }

    /// A mixture's experts (Qwen3-30B-A3B-FP8's family) are served in FP8 as the projections are, an FP8 weight an
    /// expert: an FP8 checkpoint's with their own bytes and scales (each expert's gate and up one after the other), a
    /// 16-bit one's under --quantization fp8 with one scale an expert. The logits stay close to the checkpoint
    /// dequantized (the 16-bit model, online) on a prompt whose experts take more rows than the few-rows kernel does
    /// (cuBLASLt's products) and in decode steps teacher-forced with the reference's greedy tokens (the few-rows
    /// kernel's): above 0.99 on the prompt's last position, above 0.95 at every decode step (the least of an online
    /// run's eight measured 0.959 on an H100, the tensor-scaled checkpoint's 0.995: a step's logits are one token's, through the 2 of
    /// 4 experts its router picks); the engine serves it in FP8.
    [GpuTheory]
    [InlineData(Weights.QuantizedCheckpointTests.Format.Block128ScaleInv)]
    [InlineData(Weights.QuantizedCheckpointTests.Format.TensorScale)]
    [InlineData(null)]
    public async Task AMixturesExpertsAreServedInFp8(Weights.QuantizedCheckpointTests.Format? format)
    {
        using var wide = new TempDirectory();
        using var directory = new TempDirectory();
        using var dequantized = new TempDirectory();
        Weights.QuantizedCheckpointTests.WideQwen3Moe(wide.Path);
        var online = format is null;
        if (format is { } stored) Weights.QuantizedCheckpointTests.Quantize(wide.Path, stored, directory.Path, dequantized.Path);
        var (served, reference) = online ? (wide.Path, wide.Path) : (directory.Path, dequantized.Path);
        if (!online)
        {
            using var checkpoint = Serving.Engine.Weights.SafetensorsCheckpoint.Open(directory.Path);
            using var decoder = ModelLoader.LoadDecoder(directory.Path, "bfloat16", CUDA);
            var stacks = decoder.named_modules().Where(m => m.module is ExpertWeights).ToList();
            Assert.Equal(2 * decoder.Config.NumHiddenLayers, stacks.Count);
            foreach (var (name, module) in stacks)
            {
                var experts = (ExpertWeights)module;
                Assert.Equal(experts.Experts, experts.Fp8Parts.Count);
                var tensors = Weights.QuantizedCheckpointTests.ExpertTensorsOf(name, experts.Experts);
                var perExpert = tensors.Length / experts.Experts;
                for (var e = 0; e < experts.Experts; e++)
                {
                    var (own, part) = (tensors.Skip(e * perExpert).Take(perExpert).ToArray(), experts.Fp8Parts[e]);
                    var bytes = own.SelectMany<string, byte>(tensor => checkpoint.Read(tensor + ".weight").data<byte>().ToArray()).ToArray();
                    Assert.Equal(bytes, part.Values.cpu().data<byte>().ToArray());
                    // an expert's down of one group of 128 columns has one block a row of blocks: its scales are one a
                    // row, served as such (the same products: one group of the input is its whole row)
                    if (format == Weights.QuantizedCheckpointTests.Format.Block128ScaleInv && part.InFeatures > Fp8Products.ScaleBlock)
                    {
                        var scales = cat(own.Select(tensor => checkpoint.Read(tensor + ".weight_scale_inv").to_type(ScalarType.Float32)).ToList(), 0);
                        Assert.Equal(Fp8Scaling.PerBlock, part.Scaling);
                        Assert.Equal(scales.data<float>().ToArray(), part.Scale.narrow(1, 0, scales.size(1)).cpu().contiguous().data<float>().ToArray());
                        continue;
                    }
                    var rows = own.SelectMany(tensor => format == Weights.QuantizedCheckpointTests.Format.Block128ScaleInv
                        ? Weights.QuantizedCheckpointTests.RowGroupScales(checkpoint, tensor) : Weights.QuantizedCheckpointTests.RowScales(checkpoint, tensor)).ToArray();
                    Assert.Equal(rows.Distinct().Count() == 1 ? [rows[0]] : rows, part.Scale.cpu().data<float>().ToArray());
                }
            }
        }
        using var fp8 = ModelLoader.Load(served, "bfloat16", CUDA, quantizeFp8: online);
        var count = online ? fp8.QuantizeWeightsToFp8() : fp8.KeepCheckpointFp8();
        // qkv and o, and an FP8 weight an expert of each kind, on every layer
        Assert.Equal((2 + 2 * fp8.Config.NumExperts) * fp8.Config.NumHiddenLayers, count);
        using var bf16 = ModelLoader.Load(reference, "bfloat16", CUDA);
        var correlations = PromptAndDecodeCorrelations(fp8, bf16, MixturePrompt);
        output.WriteLine($"{(online ? "online" : format)}: {count} FP8 weights ({fp8.Fp8Scales}); logit correlation with " +
            $"{(online ? "the bf16 model" : "the checkpoint dequantized to bf16")}: prompt of 48 {correlations[0]:F5}, decode steps min {correlations.Skip(1).Min():F5}");
        Assert.True(correlations[0] > 0.99, $"logit correlation {correlations[0]} on the prompt");
        Assert.All(correlations, correlation => Assert.True(correlation > 0.95, $"logit correlation {correlation}"));

        var options = new EngineOptions { Model = served, Dtype = "bfloat16", Device = "cuda", Quantization = online ? "fp8" : null, NumGpuBlocksOverride = 256 };
        await using var engine = new LlmEngine(options);
        await engine.WaitUntilReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("fp8", engine.Info.WeightStorage);
        Assert.Equal(16, (await CollectAsync(engine, Greedy(MixturePrompt, 16))).Tokens().Length);
    }

    /// gpt-oss's experts (stacked from the checkpoint's input-major matrices) take -q fp8 as any mixture's: an FP8
    /// weight an expert, a decode step's in experts_few_rows, the prompt's over the routed rows quantized once a layer
    /// kind; the logits those of bf16. On the wider, calmer twin of the gpt-oss fixture (hidden 256, experts of 128,
    /// weights a tenth): the fixture's own large weights meet FP8's rounding with logits that part from bf16's at some
    /// decode steps (correlation 0.34 on an H100), as a float64 emulation of the same W8A8 rounding does (0.39).
    [GpuFact]
    public void GptOssExpertsAreServedInFp8()
    {
        using var folder = new TempDirectory();
        Architectures.GptOssTests.Write(folder.Path, hidden: 256, width: 128, weightScale: 0.1);
        using var fp8 = ModelLoader.Load(folder.Path, "bfloat16", CUDA, quantizeFp8: true);
        var count = fp8.QuantizeWeightsToFp8();
        Assert.Equal((2 + 2 * fp8.Config.NumExperts) * fp8.Config.NumHiddenLayers, count);   // qkv and o, each expert's two
        using var bf16 = ModelLoader.Load(folder.Path, "bfloat16", CUDA);
        var correlations = PromptAndDecodeCorrelations(fp8, bf16, MixturePrompt);
        output.WriteLine($"gpt-oss online FP8: {count} FP8 weights; logit correlation with bf16: prompt of 48 {correlations[0]:F5}, decode steps min {correlations.Skip(1).Min():F5}");
        Assert.True(correlations[0] > 0.99, $"logit correlation {correlations[0]} on the prompt");
        Assert.All(correlations, correlation => Assert.True(correlation > 0.95, $"logit correlation {correlation}"));
    }

    // 48 tokens of the tiny mixtures' vocabulary: ~24 rows an expert, more than the few-rows kernels take
    static readonly int[] MixturePrompt = Enumerable.Range(0, 48).Select(i => (i * 37 + 5) % 500 + 3).ToArray();

    // the correlation of fp8's logits with bf16's over the prompt, then over 8 decode steps of bf16's greedy tokens
    static List<double> PromptAndDecodeCorrelations(LoadedModel fp8, LoadedModel bf16, int[] prompt)
    {
        using var fp8Cache = fp8.CreateKVCache(numBlocks: 16, blockSize: 16);
        using var bf16Cache = bf16.CreateKVCache(numBlocks: 16, blockSize: 16);
        var (a, b) = (new PagedRunner(fp8, fp8Cache), new PagedRunner(bf16, bf16Cache));
        var (seqA, seqB) = (a.Add(prompt), b.Add(prompt));
        var correlations = new List<double>();
        var (logitsA, logitsB) = (a.Step([(seqA, prompt.Length)])[0], b.Step([(seqB, prompt.Length)])[0]);
        for (var step = 0; step < 8; step++)
        {
            correlations.Add(Correlation(logitsA, logitsB));
            var token = PagedRunner.ArgMax(logitsB);
            a.Append(seqA, token);
            b.Append(seqB, token);
            (logitsA, logitsB) = (a.Step([(seqA, 1)])[0], b.Step([(seqB, 1)])[0]);
        }
        return correlations;
    }

    // bfloat16's logit of token a minus token b after the tokens, teacher-forced
    static double Gap(LoadedModel model, PagedKVCache cache, IEnumerable<int> tokens, int a, int b)
    {
        var runner = new PagedRunner(model, cache);
        var seq = runner.Add(tokens);
        var logits = runner.Step([(seq, runner.Pending(seq))])[0];
        return logits[a] - logits[b];
    }

    static double Correlation(float[] a, float[] b)
    {
        var (meanA, meanB) = (a.Average(v => (double)v), b.Average(v => (double)v));
        var (covariance, varianceA, varianceB) = (0.0, 0.0, 0.0);
        for (var i = 0; i < a.Length; i++)
        {
            var (da, db) = (a[i] - meanA, b[i] - meanB);
            (covariance, varianceA, varianceB) = (covariance + da * db, varianceA + da * da, varianceB + db * db);
        }
        return covariance / Math.Sqrt(varianceA * varianceB);
    }
}
