using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Runs the whole benchmark: ceilings once, then per model kernel checks, a full-step comparison of the
/// fused and plain paths, decode and prefill timings, and capacity.
internal sealed class BenchRunner(BenchOptions options)
{
    readonly Random _random = new(1234);
    readonly List<CheckResult> _checks = [];
    readonly List<FixtureResult> _fixtures = [];
    readonly List<DecodeResult> _decode = [];
    readonly List<PrefillResult> _prefill = [];
    readonly List<GenerateResult> _generate = [];
    readonly List<CapacityResult> _capacity = [];
    readonly List<KVQualityResult> _kvQuality = [];
    readonly List<ProfileResult> _profiles = [];
    readonly List<SkippedShape> _skipped = [];
    readonly List<LinearResult> _linear = [];
    readonly List<AttentionSplitResult> _attentionSplits = [];

    public int Run()
    {
        var device = torch.device(options.Device);
        var dtype = ModelDtype.Parse(options.Dtype);
        // on CPU (smoke runs) only the plain path exists: the fused kernels are CUDA code
        var cudaDevice = device.type == DeviceType.CUDA ? CudaDevice.Open(device.index < 0 ? 0 : device.index) : null;
        var ceilings = DeviceCeilings.Measure(dtype, device);
        Console.WriteLine($"bandwidth {ceilings.BandwidthBytesPerSecond / 1e9:F0} GB/s, matmul {ceilings.MatmulFlopsPerSecond / 1e12:F0} TFLOP/s");
        if (options.FixturesPath is { } fixtures)
        {
            foreach (var result in FixtureChecks.Run(fixtures, device, options.TensorParallelSize))
            {
                var vsBf16 = result.MaxVsBf16KV is { } max ? $", vs bf16 KV max {max:E2} mean {result.MeanVsBf16KV:E2}" : "";
                Console.WriteLine($"   fixture {result.Model} [{result.Dtype}, {result.KVCacheDtype} KV, fused {result.FusedKernels}] prompt {result.Prompt}: max logit error {result.MaxLogitError:E2}, greedy {result.GreedyMatches}/16{vsBf16}");
                _fixtures.Add(result);
            }
        }

        foreach (var name in options.Models)
        {
            RunKernelChecks(name, dtype, device, cudaDevice);
            if (options.Linear && cudaDevice is not null)
            {
                _linear.AddRange(LinearBenchmark.Run(name, ConfigOf(name), dtype, cudaDevice, device, [1, 8, 16, 32, 64, 128, 256], options.Quantization));
            }

            foreach (var kvDtype in options.KVCacheDtypes)
            {
                RunModel(name, kvDtype, device, cudaDevice, ceilings);
            }

            if (options.KVQuality)
            {
                foreach (var result in KVQualityChecks.Run(name, options.Dtype, device, options.KVQualityText))
                {
                    Console.WriteLine($"   kv quality {result.Case}: max |fp8 - bf16| {result.MaxAbsError:E2}, mean {result.MeanAbsError:E2}, "
                        + $"argmax agree {result.ArgmaxAgreement:P2} of {result.Positions}, top tokens shared {result.TopSetAgreement:P2} "
                        + $"(bf16 top tied at {result.TiedTop:P2}), within a bf16 step {result.WithinRoundingAgreement:P2} "
                        + $"(non-finite logits: bf16 {result.NonFiniteBf16}, fp8 {result.NonFiniteFp8})");
                    _kvQuality.Add(result);
                }
            }
        }

        var deviceName = cudaDevice is null ? options.Device : $"{options.Device} (sm_{cudaDevice.ComputeCapability}, {cudaDevice.MultiprocessorCount} SMs)";
        var report = new BenchReport(deviceName, dtype.ToString(),
            ceilings.BandwidthBytesPerSecond / 1e9, ceilings.MatmulFlopsPerSecond / 1e12, _fixtures, _checks, _decode, _prefill, _generate, _capacity, _kvQuality, _profiles)
        {
            Skipped = _skipped,
            AttentionSplits = _attentionSplits,
            Linear = _linear,
        };
        ReportWriter.PrintChecks(_checks);
        ReportWriter.Print(report);
        if (options.JsonPath is { } path)
        {
            ReportWriter.WriteJson(report, path);
        }

        var fixturesPass = _fixtures.All(f => f.Dtype != "float32" || f.KVCacheDtype != "float32" || (f.MaxLogitError <= 1e-3 && f.GreedyMatches == 16));
        return _checks.All(c => c.Passed) && fixturesPass ? 0 : 1;
    }

    // a preset's shape or a checkpoint folder's config.json
    static Serving.Engine.Config.ModelConfig ConfigOf(string model) =>
        ModelPresets.IsPreset(model) ? ModelPresets.Get(model) : Serving.Engine.Config.ModelConfig.Load(model);

    void RunKernelChecks(string preset, ScalarType dtype, Device device, CudaDevice? cudaDevice)
    {
        Console.WriteLine($"== {preset}");
        var config = ConfigOf(preset);
        if (options.Check && cudaDevice is not null)
        {
            using var stream = CudaStream.Create(cudaDevice);
            stream.MakeCurrent();
            // the model's type, float32, and an FP8 pool under the model's type where the device has FP8
            var shapes = new[] { (dtype, KVCacheDtype.Of(dtype)), (ScalarType.Float32, KVCacheDtype.Float32), (dtype, KVCacheDtype.Fp8E4M3) }
                .Distinct()
                .Select(s => KernelShape.Of(config, s.Item1, s.Item2))
                .Where(shape => FusedKernels.Supports(shape, cudaDevice.ComputeCapability));
            foreach (var shape in shapes)
            {
                using var kernels = new FusedKernels(cudaDevice, stream.Handle, shape);
                AddChecks(new KernelChecks(kernels, config, device).RunAll(_random));
            }
            stream.Synchronize();
        }
    }

    void RunModel(string preset, string kvDtype, Device device, CudaDevice? cudaDevice, DeviceCeilings ceilings)
    {
        var (model, cacheDtype) = BenchModel.Load(preset, options.Dtype, kvDtype, device, MaxPositions(), options.TensorParallelSize, options.Quantization);
        var memoryBytes = cudaDevice?.TotalMemoryBytes ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var plan = new ShapePlan(options, model.KVCacheSpec(cacheDtype), memoryBytes, model.WeightBytes, preset);
        using var bench = new BenchModel(preset, model, cacheDtype, plan.PoolBlocks, options.BlockSize);
        Console.WriteLine($"== {bench.Name}");
        if (bench.Model.WeightsFp8) Console.WriteLine($"   fp8 weights: {bench.Model.Fp8Scales}");
        foreach (var skipped in plan.Skipped())
        {
            Console.WriteLine($"   {skipped.Kind} {skipped.Shape}: {skipped.Reason} (needs {skipped.KVBytesNeeded / 1e9:F1} GB of KV cache, {skipped.KVBytesAvailable / 1e9:F1} GB left after the weights)");
            _skipped.Add(skipped);
        }

        var fused = bench.Model.FusedKernelsActive(bench.Cache.Dtype);
        // the plain path has no FP8 type: an FP8 pool is compared with nothing, the kernel checks cover it
        if (options.Check && fused && !bench.Cache.Dtype.IsFp8)
        {
            AddChecks(StepChecks.Run(bench, _random));
        }

        if (fused && !options.DependentLaunch) bench.Model.FusedBackend(bench.Cache.Dtype).Kernels.DependentLaunch = false;
        if (bench.Model.Fp8Products is { } fp8Products) fp8Products.FewRowsKernel = options.Fp8FewRows;
        var timing = new DecodeBenchmark(bench, ceilings, device, options.Steps);
        if (options.CudaGraphs && bench.Model.CanCaptureGraphs(bench.Cache.Dtype) && plan.GraphBatchSizes.Count > 0)   // none: no decode shape fits
        {
            var largest = plan.LargestStep;
            bench.Model.ReserveStepBuffers(bench.Cache.Dtype, largest.Tokens, largest.Seqs, largest.BlocksPerSeq);
            // a graph serving batches 2 to 64 would size its attention grid for 2 sequences at the longest context:
            // many empty partitions at 64 (ShapePlan.GraphBatchSizes captures the server's buckets instead)
            bench.Model.CaptureDecodeGraphs(bench.Cache, plan.GraphBatchSizes, options.MatmulTuning);
        }

        if (fused && options.Profile)
        {
            foreach (var (batch, context) in plan.Decode)
            {
                var profile = timing.Profile(batch, context, _random);
                _profiles.Add(profile);
                var step = profile.Milliseconds["step"];
                Console.WriteLine($"   profile b={batch} ctx={context}: " + string.Join(", ", profile.Milliseconds.Where(p => p.Key != "step")
                    .OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value:F2} ms ({p.Value / step:P0})")) + $"; step {step:F2} ms");
            }
        }

        if (fused && options.AttentionSplits)
        {
            foreach (var (batch, context) in plan.Decode)
            {
                var splits = timing.AttentionSplits(batch, context, _random);
                _attentionSplits.Add(splits);
                var best = splits.MillisecondsByPartitions.MinBy(p => p.Value);
                Console.WriteLine($"   attention splits b={batch} ctx={context}: " + string.Join(", ", splits.MillisecondsByPartitions
                    .Select(p => $"{p.Key}: {p.Value:F3}")) + $" ms; planned {splits.PlannedPartitions}, fastest {best.Key}");
            }
        }

        foreach (var path in Paths(fused, plainPossible: !bench.Cache.Dtype.IsFp8))
        {
            foreach (var (batch, context) in plan.Decode)
            {
                if (!Measure(plan, "decode", $"{batch} x {context}", plan.Blocks(batch, context), () => _decode.Add(timing.Decode(path, batch, context, _random)))) continue;
                Console.WriteLine($"   {path} decode b={batch} ctx={context}: {_decode[^1].StepMs:F2} ms");
            }

            foreach (var (batch, length) in plan.Prefill)
            {
                if (!Measure(plan, "prefill", $"{batch} x {length}", plan.Blocks(batch, length), () => _prefill.Add(timing.Prefill(path, batch, length, _random)))) continue;
                Console.WriteLine($"   {path} prefill {batch}x{length}: {_prefill[^1].StepMs:F1} ms");
            }

            foreach (var batch in plan.Generate)
            {
                const int prompt = ShapePlan.GeneratePrompt, newTokens = ShapePlan.GenerateNewTokens;
                if (!Measure(plan, "generate", $"{batch} x ({prompt}+{newTokens})", plan.GenerateBlocks(batch), () => _generate.Add(timing.Generate(path, batch, prompt, newTokens, _random)))) continue;
                Console.WriteLine($"   {path} generate {batch}x({prompt}+{newTokens}): {_generate[^1].TokensPerSecond:F0} tok/s");
            }
        }

        _capacity.Add(Capacity(bench, cudaDevice?.TotalMemoryBytes ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes));
    }

    /// Runs one measurement; a device out-of-memory (activations beyond the plan) skips the shape, not the run.
    bool Measure(ShapePlan plan, string kind, string shape, long blocks, Action measure)
    {
        try
        {
            measure();
            return true;
        }
        catch (Exception error) when (error.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
        {
            var skipped = plan.OutOfMemory(kind, shape, blocks);
            Console.WriteLine($"   {kind} {shape}: {skipped.Reason}: {error.Message.Split('\n')[0]}");
            _skipped.Add(skipped);
            return false;
        }
    }

    // Printed as they complete, so a kernel fault that ends the process still leaves the checks before it.
    void AddChecks(IEnumerable<CheckResult> checks)
    {
        foreach (var check in checks)
        {
            Console.WriteLine($"   check {check.Name} [{check.Dtype}]: rel {check.RelativeError:E2}, max abs {check.MaxAbsError:E2} {(check.Passed ? "ok" : "FAIL")}");
            _checks.Add(check);
        }
    }

    IEnumerable<string> Paths(bool fusedAvailable, bool plainPossible) => new[]
    {
        fusedAvailable && options.CudaGraphs ? "graph" : null,
        fusedAvailable ? "fused" : null,
        plainPossible && (options.Plain || !fusedAvailable) ? "plain" : null,
    }.OfType<string>();

    // the longest sequence any measurement builds: decode contexts, prefill prompts, generate()'s
    int MaxPositions() =>
        new[] { options.ContextLengths.Max(), options.Prefill.Select(p => p.Length).DefaultIfEmpty(0).Max(), ShapePlan.GeneratePrompt + ShapePlan.GenerateNewTokens }.Max() + 1;

    CapacityResult Capacity(BenchModel bench, long totalMemoryBytes)
    {
        var weightBytes = bench.Model.WeightBytes;
        var budget = (long)(totalMemoryBytes * options.GpuMemoryUtilization) - weightBytes;
        var sequences = Math.Max(0, budget / (bench.KVBytesPerToken * options.FitLength));
        return new CapacityResult(bench.Name, weightBytes, bench.KVBytesPerToken, options.FitLength, sequences);
    }

    static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
