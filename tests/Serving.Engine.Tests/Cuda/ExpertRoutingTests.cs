using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// expert_routing.cu's three kernels against the TorchSharp ops they replace, on the same device: each token's experts
/// (ExpertChoice.Choose: the same experts in the same order, weights within a step of the weights' type), the slots
/// grouped by expert (ExpertGroups.Of: every tensor the same, Active too) and the weighted sum of the experts' outputs
/// (ExpertGroups.Combine: the same bits, with and without gpt-oss's bias). Logits are distinct (a permutation's steps,
/// exact in 16 bits), so that no choice rests on a tie the two order differently; the outputs are poisoned with NaN.
/// A step of at most 8 tokens also routes in one launch (expert_route): the same bits as the two kernels'; that launch
/// may compute the router's product too.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class ExpertRoutingTests(ITestOutputHelper output)
{
    static readonly Scalar NaN = double.NaN.ToScalar(), None = (-1L).ToScalar(), Zero = 0.0.ToScalar();

    [GpuTheory]
    [InlineData(8, 2, true, true, 1)]        // mixtral, one token
    [InlineData(8, 2, true, true, 300)]
    [InlineData(128, 8, true, true, 1)]      // qwen3_moe
    [InlineData(128, 8, true, true, 64)]
    [InlineData(128, 8, true, true, 1000)]   // 8,000 slots: one block's shared memory
    [InlineData(60, 4, true, false, 37)]     // qwen2_moe: not normalized, a width of 64 over 60 experts
    [InlineData(64, 6, true, true, 5, true)] // ernie4_5_moe: a bias for the choice alone
    [InlineData(32, 4, false, false, 65)]    // gpt-oss: the top logits' softmax
    [InlineData(40, 8, false, false, 3)]     // granitemoe
    [InlineData(1024, 32, true, true, 2)]    // the kernels' largest
    public void TheKernelsRouteAsTheTorchOps(int experts, int topK, bool softmaxFirst, bool normalize, int tokens, bool choiceBias = false)
    {
        const int hidden = 96;
        var type = ScalarType.BFloat16;
        Assert.True(FusedKernels.TakesGrouping(experts, topK, tokens * topK));
        var device = CudaDevice.Open(0);
        using var stream = CudaStream.Create(device);
        stream.MakeCurrent();
        using var kernels = new FusedKernels(device, stream.Handle, new KernelShape(type, KVCacheDtype.Of(type), 64, 64, 4, 2));
        using var scope = NewDisposeScope();
        var generator = new Generator(seed: 13);
        // each token's logits a permutation of steps of 1/16 (distinct, exact in bfloat16)
        using var step = (1.0 / 16).ToScalar();
        var logits = stack(Enumerable.Range(0, tokens).Select(_ => randperm(experts, generator: generator).to(ScalarType.Float32).mul(step)).ToList())
            .to(softmaxFirst ? ScalarType.Float32 : type, CUDA);
        var bias = choiceBias ? rand(1, experts, generator: generator).mul(step).to(CUDA) : null;
        var choice = new ExpertChoice(topK, softmaxFirst, normalize, bias);

        var (chosen, weights) = choice.Choose(logits, type);
        var (fusedChosen, fusedWeights) = (full(tokens, topK, None, ScalarType.Int64, CUDA), full(tokens, topK, NaN, type, CUDA));
        kernels.ChooseExperts(logits, bias, softmaxFirst, normalize, fusedChosen, fusedWeights);
        Assert.True(chosen.equal(fusedChosen).all().item<bool>(), "the same experts, largest first");
        var weightError = (fusedWeights.to(ScalarType.Float32) - weights.to(ScalarType.Float32)).abs();
        using var relative = (1.0 / 128).ToScalar();
        Assert.True(weightError.le(weights.to(ScalarType.Float32).abs().mul(relative)).all().item<bool>(),
            $"weights within a bfloat16 step: max |fused - torch| {weightError.max().item<float>():E2}");

        // the groups and the combination from the same choice
        var groups = ExpertGroups.Of(chosen, weights, experts);
        var slots = tokens * topK;
        var fused = GroupsToWrite(tokens, topK, experts, type);
        kernels.GroupExperts(chosen, weights, experts, fused.Sorted, fused.RowOfSlot, fused.Tokens, fused.ExpertOfRow, fused.Starts, fused.Active);
        Assert.True(groups.Tokens.equal(fused.Tokens).all().item<bool>(), "each grouped row's token");
        Assert.True(groups.ExpertOfRow.equal(fused.ExpertOfRow).all().item<bool>(), "each grouped row's expert");
        Assert.True(groups.Starts.equal(fused.Starts).all().item<bool>(), "where each expert's rows start");
        Assert.True(groups.RowOfSlot.equal(fused.RowOfSlot).all().item<bool>(), "each slot's grouped row");
        Assert.True(groups.Weights.equal(fused.Sorted).all().item<bool>(), "each token's weights in expert order");
        Assert.True(groups.Active.equal(fused.Active).all().item<bool>(), "the experts with rows first, then the others");

        var x = randn(tokens, hidden, generator: generator).to(type, CUDA);
        var grouped = randn(slots, hidden, generator: generator).to(type, CUDA);
        var downBias = randn(experts, hidden, generator: generator).to(type, CUDA);
        foreach (var withBias in new[] { false, true })
        {
            var expected = groups.Combine(grouped, x, withBias ? downBias : null);
            var combined = full(tokens, hidden, NaN, type, CUDA);
            kernels.CombineExperts(grouped, fused.RowOfSlot, fused.Sorted, withBias ? downBias : null, fused.ExpertOfRow, combined);
            Assert.True(expected.equal(combined).all().item<bool>(),
                $"the weighted sum, bit for bit{(withBias ? " (with the bias)" : "")}: max |fused - torch| {(combined - expected).abs().max().to(ScalarType.Float32).item<float>():E2}");
        }
        if (FusedKernels.TakesRouting(tokens, experts, topK))
            RoutesInOneLaunchAsTheTwo(kernels, logits, bias, choice, fusedChosen, fusedWeights);
        output.WriteLine($"{experts} experts, top {topK}, {tokens} tokens: max |weight error| {weightError.max().item<float>():E2}");
    }

    /// torch.topk's order where values tie or are not numbers, which the random logits above never meet: NaN first
    /// (any sign), -0 tied with +0, ties to the lower expert, and a row of -inf still yields k experts; expert_choice
    /// and expert_route alike.
    [GpuFact]
    public void TiesGoToTheLowerExpertAndNaNFirst()
    {
        const int experts = 128, topK = 4;
        var device = CudaDevice.Open(0);
        using var stream = CudaStream.Create(device);
        stream.MakeCurrent();
        var type = ScalarType.BFloat16;
        using var kernels = new FusedKernels(device, stream.Handle, new KernelShape(type, KVCacheDtype.Of(type), 64, 64, 4, 2));
        using var scope = NewDisposeScope();
        var rows = new float[3 * experts];
        rows[0] = -0f;                                            // row 0: zeros, -0 at expert 0, NaN at 5
        rows[5] = float.NaN;
        for (var e = 0; e < experts; e++) rows[experts + e] = float.NegativeInfinity;   // row 1: all -inf
        rows[2 * experts + 77] = -float.NaN;                      // row 2: ones, a NaN of either sign at 77 and 3
        rows[2 * experts + 3] = float.NaN;
        for (var e = 0; e < experts; e++) if (e != 3 && e != 77) rows[2 * experts + e] = 1f;
        var logits = tensor(rows, [3, experts]).to(CUDA);
        var expected = tensor(new long[] { 5, 0, 1, 2, 0, 1, 2, 3, 3, 77, 0, 1 }, [3, topK]).to(CUDA);
        foreach (var route in new[] { false, true })
        {
            var (chosen, weights) = (full(3, topK, None, ScalarType.Int64, CUDA), full(3, topK, NaN, type, CUDA));
            if (route)
            {
                var groups = GroupsToWrite(3, topK, experts, type);
                kernels.RouteExperts(logits, null, softmaxFirst: false, normalize: false, chosen, weights,
                    groups.Sorted, groups.RowOfSlot, groups.Tokens, groups.ExpertOfRow, groups.Starts, groups.Active);
            }
            else kernels.ChooseExperts(logits, null, softmaxFirst: false, normalize: false, chosen, weights);
            output.WriteLine($"{(route ? "expert_route" : "expert_choice")}: {string.Join(" ", chosen.cpu().data<long>().ToArray())}");
            Assert.True(expected.equal(chosen).all().item<bool>(), $"{(route ? "expert_route" : "expert_choice")}: torch.topk's order");
        }
    }

    /// expert_route with the router's product in its launch: logits within a step of bfloat16 of cuBLAS's product (the
    /// same float32 sums in another order, the bias added where given), then every output as expert_route writes them
    /// from those logits; twice in a row, so that the count of the blocks that finished their logits starts at 0 again.
    [GpuTheory]
    [InlineData(128, 8, true, true, 1, 2048, false)]    // qwen3-30b-a3b, one sequence
    [InlineData(128, 8, true, true, 8, 2048, false)]    // eight
    [InlineData(32, 4, false, false, 3, 2880, true)]    // gpt-oss-20b: its router's bias; hidden not a whole number of passes
    [InlineData(60, 4, true, false, 5, 64, false)]      // fewer vectors than threads
    [InlineData(1024, 32, true, true, 2, 256, false)]   // the kernels' largest
    public void TheRoutersProductInTheLaunchRoutesAsItsLogits(int experts, int topK, bool softmaxFirst, bool normalize, int tokens, int hidden,
        bool withBias)
    {
        var type = ScalarType.BFloat16;
        var device = CudaDevice.Open(0);
        using var stream = CudaStream.Create(device);
        stream.MakeCurrent();
        using var kernels = new FusedKernels(device, stream.Handle, new KernelShape(type, KVCacheDtype.Of(type), 64, 64, 4, 2));
        Assert.True(kernels.TakesRouterProduct(tokens, experts, topK, hidden));
        using var scope = NewDisposeScope();
        var generator = new Generator(seed: 17);
        using var small = 0.02.ToScalar();
        var x = randn(tokens, hidden, generator: generator).to(type, CUDA);
        var router = randn(experts, hidden, generator: generator).mul(small).to(type, CUDA);
        var bias = withBias ? randn(experts, generator: generator).to(type, CUDA) : null;
        var expected = nn.functional.linear(x, router, bias);
        for (var round = 0; round < 2; round++)
        {
            var logits = full(tokens, experts, NaN, type, CUDA);
            var (chosen, weights) = (full(tokens, topK, None, ScalarType.Int64, CUDA), full(tokens, topK, NaN, type, CUDA));
            var one = GroupsToWrite(tokens, topK, experts, type);
            kernels.RouteExperts(logits, null, softmaxFirst, normalize, chosen, weights, one.Sorted, one.RowOfSlot, one.Tokens, one.ExpertOfRow,
                one.Starts, one.Active, new RouterProduct(x, router, bias));
            var (l, e) = (logits.to(ScalarType.Float32), expected.to(ScalarType.Float32));
            var error = (l - e).abs();
            using var step = (1.0 / 128).ToScalar();
            using var floor = 1e-3.ToScalar();
            Assert.True(error.le(e.abs().mul(step).add(floor)).all().item<bool>(),
                $"round {round}: logits within a bfloat16 step of cuBLAS's: max |fused - cuBLAS| {error.max().item<float>():E2}");
            output.WriteLine($"{experts} experts, {tokens} tokens, hidden {hidden}, round {round}: max |logit - cuBLAS's| {error.max().item<float>():E2}, " +
                $"{error.gt(Zero).sum().item<long>()} of {tokens * experts} differ");

            var (routeChosen, routeWeights) = (full(tokens, topK, None, ScalarType.Int64, CUDA), full(tokens, topK, NaN, type, CUDA));
            var two = GroupsToWrite(tokens, topK, experts, type);
            kernels.RouteExperts(logits.clone(), null, softmaxFirst, normalize, routeChosen, routeWeights, two.Sorted, two.RowOfSlot, two.Tokens,
                two.ExpertOfRow, two.Starts, two.Active);
            Assert.True(routeChosen.equal(chosen).all().item<bool>(), $"round {round}: the same experts as from its logits");
            Assert.True(routeWeights.equal(weights).all().item<bool>(), $"round {round}: the same weights");
            AssertSameGroups(two, one, $"round {round}");
        }
    }

    // a grouping's tensors as the kernels write them (FusedKernels.GroupExperts' outputs)
    sealed record Groups(Tensor Sorted, Tensor RowOfSlot, Tensor Tokens, Tensor ExpertOfRow, Tensor Starts, Tensor Active);

    // a grouping to write, poisoned (NaN weights, -1 indices)
    static Groups GroupsToWrite(long tokens, int topK, int experts, ScalarType type) =>
        new(full(tokens, topK, NaN, type, CUDA), full(tokens * topK, None, ScalarType.Int64, CUDA), full(tokens * topK, None, ScalarType.Int64, CUDA),
         full(tokens * topK, None, ScalarType.Int64, CUDA), full(experts + 1, None, ScalarType.Int64, CUDA), full(experts, None, ScalarType.Int64, CUDA));

    // expert_route (a step of at most 8 tokens) writes what expert_choice then expert_groups write, bit for bit
    static void RoutesInOneLaunchAsTheTwo(FusedKernels kernels, Tensor logits, Tensor? bias, ExpertChoice choice, Tensor chosen, Tensor weights)
    {
        var (tokens, experts, topK, type) = (logits.size(0), (int)logits.size(1), choice.TopK, weights.dtype);
        var two = GroupsToWrite(tokens, topK, experts, type);
        kernels.GroupExperts(chosen, weights, experts, two.Sorted, two.RowOfSlot, two.Tokens, two.ExpertOfRow, two.Starts, two.Active);
        var one = GroupsToWrite(tokens, topK, experts, type);
        var (routeChosen, routeWeights) = (full(tokens, topK, None, ScalarType.Int64, CUDA), full(tokens, topK, NaN, type, CUDA));
        kernels.RouteExperts(logits, bias, choice.SoftmaxFirst, choice.Normalize, routeChosen, routeWeights,
            one.Sorted, one.RowOfSlot, one.Tokens, one.ExpertOfRow, one.Starts, one.Active);
        Assert.True(chosen.equal(routeChosen).all().item<bool>(), "expert_route: the same experts");
        Assert.True(weights.equal(routeWeights).all().item<bool>(), "expert_route: the same weights");
        AssertSameGroups(two, one, "expert_route");
    }

    // every tensor of two groupings the same, bit for bit
    static void AssertSameGroups(Groups expected, Groups actual, string context)
    {
        foreach (var (name, a, b) in new[] { ("sorted weights", expected.Sorted, actual.Sorted), ("row of slot", expected.RowOfSlot, actual.RowOfSlot),
                     ("tokens", expected.Tokens, actual.Tokens), ("expert of row", expected.ExpertOfRow, actual.ExpertOfRow),
                     ("starts", expected.Starts, actual.Starts), ("active", expected.Active, actual.Active) })
            Assert.True(a.equal(b).all().item<bool>(), $"{context}: the same {name}");
    }
}
