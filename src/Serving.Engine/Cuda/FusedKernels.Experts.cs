using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

// A mixture's experts: their products (expert_linear.cu) and the routing around them (expert_routing.cu).
internal sealed unsafe partial class FusedKernels
{
    /// Whether ExpertsLinear takes a mixture's experts of this type and shape (rows and columns of one expert's weight):
    /// 16-bit, rows a multiple of 16 and columns of 8 (expert_linear.cu).
    public static bool TakesExperts(ScalarType dtype, long rows, long columns) =>
        dtype is ScalarType.BFloat16 or ScalarType.Float16 && rows % 16 == 0 && columns % 8 == 0;

    /// The rows of x ExpertsLinear multiplies in one pass over an expert's weight (expert_linear.cu's EXPERT_ROWS).
    public const int ExpertRowsAPass = 32;

    /// Each expert's rows of x times its weight transposed, in one launch that reads where the groups start on the
    /// device: x (slots, columns) contiguous, its rows grouped by expert; or, with xRows (slots) int64, x the tokens' rows
    /// (numTokens, columns), grouped row r being x's row xRows[r] (ExpertGroups.Tokens: the kernel gathers the routed
    /// rows itself); weight (experts x rows, columns), expert e's rows at e x rows; starts (experts + 1) int64, expert
    /// e's rows of x being starts[e] .. starts[e + 1]; active (experts) int64, the experts with rows first
    /// (ExpertGroups.Active: blocks for min(experts, slots) of them); output (slots, rows). TakesExperts must hold.
    /// Steps of few rows an expert keep more loads in flight: fewer slots than experts (an expert's rows mostly one: a
    /// decode step of few tokens) run expert_linear_sparse (8 rows a pass), at most 8 slots an expert on average
    /// expert_linear_few (16), more expert_linear (32). glu: the rows are gates and ups, and output (slots, rows / 2)
    /// takes the activation in their place (the bits of the product, then SiluMul or ClampedGlu).
    public void ExpertsLinear(Tensor x, Tensor? xRows, Tensor weight, Tensor starts, Tensor active, Tensor output, GluActivation? glu = null)
    {
        var (rows, columns) = ((int)output.size(1) * (glu is null ? 1 : 2), (int)x.size(1));
        var (xPtr, xRowsPtr, wPtr, startsPtr, activePtr, outPtr) = (TensorPointer.Of(x), xRows is null ? IntPtr.Zero : TensorPointer.Of(xRows),
            TensorPointer.Of(weight), TensorPointer.Of(starts), TensorPointer.Of(active), TensorPointer.Of(output));
        var (biasPtr, limit) = glu is GluActivation.Clamped clamped ? (TensorPointer.Of(clamped.Bias), (float)clamped.Limit) : (IntPtr.Zero, 0f);
        void** args = stackalloc void*[] { &xPtr, &xRowsPtr, &wPtr, &startsPtr, &activePtr, &outPtr, &rows, &columns, &biasPtr, &limit };
        var (slots, experts) = (output.size(0), active.size(0));
        var kernels = glu switch
        {
            null => _expertLinear,
            GluActivation.SiluAndMul => _expertLinearSilu,
            GluActivation.Clamped => _expertLinearClamped,
            _ => throw new ArgumentException($"no expert_linear epilogue for {glu}", nameof(glu)),
        };
        var kernel = slots < experts ? kernels.Sparse : slots <= 8 * experts ? kernels.Few : kernels.Many;
        Launch(kernel, ((uint)rows / 16, ExpertBlockRows(slots, experts), 1), 128, 0, args);
    }

    /// The rows of blocks of an expert product's grid (expert_linear.cu, fp8_few_rows.cu's experts_few_rows): one an
    /// expert that may have rows, at most one a slot.
    public static uint ExpertBlockRows(long slots, long experts) => (uint)Math.Min(slots, experts);

    /// Whether ChooseExperts takes a mixture of this many experts and picks a token (expert_routing.cu: a warp's
    /// registers).
    public static bool TakesChoice(long experts, long topK) => topK >= 1 && topK <= MaxRoutingPicks && topK <= experts && experts <= 1024;

    /// Whether GroupExperts takes a step of these slots (tokens x picks) as well (one block's shared memory).
    public static bool TakesGrouping(long experts, long topK, long slots) => TakesChoice(experts, topK) && slots <= MaxRoutingSlots;

    /// Whether RouteExperts takes a step of this many tokens (a warp of its block a token) as GroupExperts would.
    public static bool TakesRouting(long tokens, long experts, long topK) =>
        tokens >= 1 && tokens <= RouteTokens && TakesGrouping(experts, topK, tokens * topK);

    /// Whether RouteExperts computes a router's product of hidden features as well (TakesRouting; rows of whole
    /// 16-byte vectors).
    public bool TakesRouterProduct(long tokens, long experts, long topK, long hidden) =>
        TakesRouting(tokens, experts, topK) && hidden % _vector == 0;

    const int MaxRoutingPicks = 32, MaxRoutingSlots = 8192, RouteThreads = 256;

    // the most tokens expert_route takes, a warp of its block each (expert_routing.cu's ROUTE_TOKENS)
    const int RouteTokens = RouteThreads / 32;

    // the logits a lane of a token's warp holds in each compiled choice (expert_routing.cu's PER_LANE): experts of at
    // most 32, 64, 128, ..., 1024; a token's warp runs alone, so each entry point holds the loops of its count and no more
    static readonly int[] LogitsALane = [1, 2, 4, 8, 16, 32];

    /// expert_choice's entry points, by the logits a lane holds (LogitsALane).
    public static readonly string[] ExpertChoiceKernels = [.. LogitsALane.Select(n => $"expert_choice_{n}")];

    /// expert_route's entry points, the same way.
    public static readonly string[] ExpertRouteKernels = [.. LogitsALane.Select(n => $"expert_route_{n}")];

    // the entry point of these (ExpertChoiceKernels' order) for this many experts (TakesChoice: at most 1024)
    static IntPtr ForExperts(IntPtr[] entryPoints, int experts) =>
        entryPoints[System.Numerics.BitOperations.Log2(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (experts + 31) / 32)))];

    /// Each token's top-k experts and their weights (expert_choice_N; DecoderStep.ChooseExperts says what): logits
    /// (tokens, experts) contiguous, float32 or the model's type; choiceBias (experts) float32 or null; chosen (tokens, k)
    /// int64 and weights (tokens, k) of the model's type written. TakesChoice must hold.
    public void ChooseExperts(Tensor logits, Tensor? choiceBias, bool softmaxFirst, bool normalize, Tensor chosen, Tensor weights)
    {
        var (tokens, experts, k) = ((int)logits.size(0), (int)logits.size(1), (int)chosen.size(1));
        var (logitsF32, first, scaled) = (logits.dtype == ScalarType.Float32 ? 1 : 0, softmaxFirst ? 1 : 0, normalize ? 1 : 0);
        var (logitsPtr, biasPtr, chosenPtr, weightsPtr) = (TensorPointer.Of(logits), choiceBias is null ? IntPtr.Zero : TensorPointer.Of(choiceBias),
            TensorPointer.Of(chosen), TensorPointer.Of(weights));
        void** args = stackalloc void*[] { &logitsPtr, &logitsF32, &biasPtr, &chosenPtr, &weightsPtr, &tokens, &experts, &k, &first, &scaled };
        Launch(ForExperts(_expertChoice, experts), ((uint)(tokens + 3) / 4, 1, 1), 128, 0, args);   // a warp a token
    }

    /// A step's slots grouped by expert in one block (expert_groups; ExpertGroups says how they lie): chosen (tokens,
    /// k) int64 and weights (tokens, k) in; weightsSorted (tokens, k), rowOfSlot (tokens x k), tokensOfRow and
    /// expertOfRow (slots) int64, starts (experts + 1) and active (experts) int64 written. TakesGrouping must hold.
    public void GroupExperts(Tensor chosen, Tensor weights, int experts, Tensor weightsSorted, Tensor rowOfSlot, Tensor tokensOfRow,
        Tensor expertOfRow, Tensor starts, Tensor active)
    {
        var (tokens, k) = ((int)chosen.size(0), (int)chosen.size(1));
        var (chosenPtr, weightsPtr, sortedPtr, rowPtr, tokensPtr, expertPtr, startsPtr, activePtr) = (TensorPointer.Of(chosen), TensorPointer.Of(weights),
            TensorPointer.Of(weightsSorted), TensorPointer.Of(rowOfSlot), TensorPointer.Of(tokensOfRow), TensorPointer.Of(expertOfRow), TensorPointer.Of(starts),
            TensorPointer.Of(active));
        void** args = stackalloc void*[] { &chosenPtr, &weightsPtr, &sortedPtr, &rowPtr, &tokensPtr, &expertPtr, &startsPtr, &activePtr, &tokens, &k, &experts };
        Launch(_expertGroups, (1, 1, 1), 1024, GroupingSharedBytes(tokens, k, experts), args);
    }

    /// ChooseExperts then GroupExperts in one launch (expert_route_N): their arguments, chosen and weights written as
    /// ChooseExperts writes them (the grouping reads them back). TakesRouting must hold. With a router's product, the
    /// launch computes logits (the model's type) from it first (a block an expert, the last block to finish
    /// routing); TakesRouterProduct must hold.
    public void RouteExperts(Tensor logits, Tensor? choiceBias, bool softmaxFirst, bool normalize, Tensor chosen, Tensor weights,
        Tensor weightsSorted, Tensor rowOfSlot, Tensor tokensOfRow, Tensor expertOfRow, Tensor starts, Tensor active,
        RouterProduct? product = null)
    {
        var (tokens, experts, k) = ((int)logits.size(0), (int)logits.size(1), (int)chosen.size(1));
        var (logitsF32, first, scaled) = (logits.dtype == ScalarType.Float32 ? 1 : 0, softmaxFirst ? 1 : 0, normalize ? 1 : 0);
        var (logitsPtr, biasPtr, chosenPtr, weightsPtr) = (TensorPointer.Of(logits), choiceBias is null ? IntPtr.Zero : TensorPointer.Of(choiceBias),
            TensorPointer.Of(chosen), TensorPointer.Of(weights));
        var (sortedPtr, rowPtr, tokensPtr, expertPtr, startsPtr, activePtr) = (TensorPointer.Of(weightsSorted), TensorPointer.Of(rowOfSlot),
            TensorPointer.Of(tokensOfRow), TensorPointer.Of(expertOfRow), TensorPointer.Of(starts), TensorPointer.Of(active));
        var (xPtr, routerPtr, routerBiasPtr, hidden, arrivalsPtr) = product is { } p
            ? (TensorPointer.Of(p.Input), TensorPointer.Of(p.Weight), p.Bias is null ? IntPtr.Zero : TensorPointer.Of(p.Bias), (int)p.Weight.size(1),
                TensorPointer.Of(_routerArrivals))
            : (IntPtr.Zero, IntPtr.Zero, IntPtr.Zero, 0, IntPtr.Zero);
        void** args = stackalloc void*[] { &logitsPtr, &logitsF32, &biasPtr, &chosenPtr, &weightsPtr, &tokens, &experts, &k, &first, &scaled,
            &sortedPtr, &rowPtr, &tokensPtr, &expertPtr, &startsPtr, &activePtr, &xPtr, &routerPtr, &routerBiasPtr, &hidden, &arrivalsPtr };
        // with the product, a block an expert
        var grid = product is null ? (1u, 1u, 1u) : ((uint)experts, 1u, 1u);
        Launch(ForExperts(_expertRoute, experts), grid, RouteThreads, RouteSharedBytes(experts), args);
    }

    // expert_route's shared memory: each expert's takers, then its rows' start
    static uint RouteSharedBytes(int experts) => (uint)((2 * experts + 1) * sizeof(int));

    // expert_groups' shared memory: each slot's expert, then the experts' counts and starts
    static uint GroupingSharedBytes(int tokens, int k, int experts) => (uint)((tokens * k + experts + 1) * sizeof(int));

    /// Each token's experts' outputs weighed and summed (expert_combine; ExpertGroups.Combine says how): grouped (slots,
    /// hidden) contiguous; rowOfSlot, weightsSorted, expertOfRow as GroupExperts wrote them; bias (experts, hidden) added
    /// to each grouped row first, or null; output (tokens, hidden) written.
    public void CombineExperts(Tensor grouped, Tensor rowOfSlot, Tensor weightsSorted, Tensor? bias, Tensor expertOfRow, Tensor output)
    {
        var (hidden, k) = ((int)output.size(1), (int)weightsSorted.size(1));
        var total = output.size(0) * hidden;
        var (groupedPtr, rowPtr, weightsPtr, biasPtr, expertPtr, outPtr) = (TensorPointer.Of(grouped), TensorPointer.Of(rowOfSlot),
            TensorPointer.Of(weightsSorted), bias is null ? IntPtr.Zero : TensorPointer.Of(bias), TensorPointer.Of(expertOfRow), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &groupedPtr, &rowPtr, &weightsPtr, &biasPtr, &expertPtr, &outPtr, &hidden, &k, &total };
        var blocks = (uint)Math.Clamp((total + 255) / 256, 1, Device.MultiprocessorCount * 16);
        Launch(_expertCombine, (blocks, 1, 1), 256, 0, args);
    }
}

/// expert_linear.cu's entry points of one epilogue (plain products, or a GluActivation), by the rows an expert:
/// expert_linear_sparse, _few, expert_linear, each with the epilogue's suffix.
internal readonly record struct ExpertLinearKernels(IntPtr Sparse, IntPtr Few, IntPtr Many)
{
    /// The epilogues' suffixes: plain products, silu(gate) x up (GluActivation.SiluAndMul), gpt-oss's clamped GLU
    /// (GluActivation.Clamped).
    public const string Plain = "", SiluAndMul = "_glu", ClampedGlu = "_clamped_glu";

    /// Every entry point's name, every epilogue's.
    public static IReadOnlyList<string> EntryPoints { get; } = [.. NamesOf(Plain), .. NamesOf(SiluAndMul), .. NamesOf(ClampedGlu)];

    public static ExpertLinearKernels Of(KernelModule module, string suffix)
    {
        var names = NamesOf(suffix);
        return new(module.GetFunction(names[0]), module.GetFunction(names[1]), module.GetFunction(names[2]));
    }

    // sparse, few, many
    static string[] NamesOf(string suffix) => [$"expert_linear_sparse{suffix}", $"expert_linear_few{suffix}", $"expert_linear{suffix}"];
}

/// An activation a mixture's gate and up product writes in place of its gates and ups (FusedKernels.ExpertsLinear's
/// glu; expert_linear.cu's GLU epilogues): the output has half the product's columns.
internal abstract record GluActivation
{
    /// silu(gate) x up, each expert's rows its gates' then its ups' (MoeMlp's gate_up), with SiluMul's bits.
    public sealed record SiluAndMul : GluActivation;

    /// gpt-oss's (ClampedGlu's bits): each expert's gate and up rows interleaved, the gate's first; Bias (experts, rows)
    /// of the model's type, contiguous, each expert's added first; Limit the model's swiglu_limit.
    public sealed record Clamped(Tensor Bias, double Limit) : GluActivation;
}

/// A router's product for RouteExperts to compute in its launch: Input (tokens, hidden), Weight (experts, hidden) and
/// Bias (experts) or null, of the model's type, contiguous; the logits Input Weight^T (+ Bias), rounded to the model's type.
internal readonly record struct RouterProduct(Tensor Input, Tensor Weight, Tensor? Bias = null);
