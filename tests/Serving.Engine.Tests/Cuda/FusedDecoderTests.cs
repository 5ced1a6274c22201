using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// The engine model on CUDA, where it runs the fused kernels, against transformers' float32 references:
/// prefill (the rope/KV-write, norm and SiLU kernels with SDPA attention) and decode (the paged decode kernel).
[Trait("Category", "Gpu")]
public sealed class FusedDecoderTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(Fixtures.Models);

    [GpuTheory, MemberData(nameof(Models))]
    public void Float32OnCudaMatchesTransformers(string fixture)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        Assert.True(model.FusedKernelsActive);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            var seq = runner.Add(prompt.InputIds);
            var logits = runner.Step([(seq, prompt.InputIds.Length)])[0];
            var maxError = logits.Zip(prompt.LastLogits, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"{fixture} '{prompt.Text}': max |last logits - reference| = {maxError:E2}");
            Assert.True(maxError <= 1e-3, $"max error {maxError}");
            Assert.Equal(prompt.Greedy16, runner.Greedy(seq, 16));
        }
    }

    /// Chunks of 3 over blocks of 4: the fused prefill attends over earlier chunks gathered from the pool.
    [GpuTheory, MemberData(nameof(Models))]
    public void ChunkedPrefillOnCudaGivesTheReferenceTokens(string fixture)
    {
        var reference = Fixtures.Reference(fixture);
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "float32", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 128, blockSize: 4);
        foreach (var prompt in reference.Prompts)
        {
            var runner = new PagedRunner(model, cache);
            Assert.Equal(prompt.Greedy16, runner.Greedy(runner.Add(prompt.InputIds), 16, chunkSize: 3));
        }
    }

    /// The fused and the plain path on the same bfloat16 weights and pool: same greedy tokens for the first
    /// steps, logits within bfloat16 rounding of each other.
    [GpuTheory, MemberData(nameof(Models))]
    public void Bfloat16FusedPathAgreesWithThePlainPath(string fixture)
    {
        var prompt = Fixtures.Reference(fixture).Prompts[0];
        using var model = ModelLoader.Load(Fixtures.Dir(fixture), "bfloat16", CUDA);
        using var cache = model.CreateKVCache(numBlocks: 64, blockSize: 16);
        model.UseFusedKernels = false;
        var plain = new PagedRunner(model, cache);
        var plainLogits = plain.Step([(plain.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
        model.UseFusedKernels = true;
        var fused = new PagedRunner(model, cache);
        var fusedLogits = fused.Step([(fused.Add(prompt.InputIds), prompt.InputIds.Length)])[0];
        var maxDifference = fusedLogits.Zip(plainLogits, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{fixture}: max |fused - plain| bf16 logits = {maxDifference:E2}");
        Assert.True(maxDifference <= 0.1, $"max difference {maxDifference}");
        Assert.Equal(PagedRunner.ArgMax(plainLogits), PagedRunner.ArgMax(fusedLogits));
    }

    /// Preset shapes (random weights made on the device) load with the fused path active and decode.
    [GpuFact]
    public void TinyPresetDecodesOnCuda()
    {
        using var model = ModelLoader.Load("tiny-gqa", "auto", CUDA);
        Assert.Equal("bfloat16", model.DtypeName);
        Assert.True(model.FusedKernelsActive);
        using var cache = model.CreateKVCache(numBlocks: 32, blockSize: 16);
        var runner = new PagedRunner(model, cache);
        var tokens = runner.Greedy(runner.Add([1, 2, 3, 4, 5]), 8);
        Assert.All(tokens, t => Assert.InRange(t, 0, model.Config.VocabSize - 1));
    }
}
