using Serving.Engine.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The plain TorchSharp math both TorchSharp backends share (TorchStep over the paged pool, DenseStep over whole
/// sequences): numerics as transformers computes them. Every operation is out of place, so autograd can follow it.
internal static class TorchOps
{
    /// weight * RMSNorm(x): normalised in float32, rounded to x's dtype, then scaled (Llama's); other families scale the
    /// float32 normalisation before rounding, gemma by (1 + weight) (RmsNormWeight).
    // x (numTokens, width), weight (width) -> (numTokens, width); or per head: x (numTokens, heads, headDim), weight
    // (headDim) or (heads, headDim)
    /// bias: the norm is nn.LayerNorm (starcoder2's), torch's own layer_norm, its weight 1 + weight under
    /// OffsetBeforeRounding (Nemotron's LayerNorm1P, the sum in the weight's dtype as transformers adds it).
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps, RmsNormWeight kind = RmsNormWeight.AfterRounding, bool centered = false,
        Tensor? bias = null)
    {
        if (bias is not null)
        {
            using var offsetScope = NewDisposeScope();
            var scale = kind == RmsNormWeight.OffsetBeforeRounding ? weight.add(HeldScalars.One, HeldScalars.One) : weight;
            return nn.functional.layer_norm(x, [x.shape[^1]], scale, bias, eps).MoveToOuterDisposeScope();
        }
        using var scope = NewDisposeScope();
        using var epsilon = eps.ToScalar();   // held through the calls (HeldScalars says why)
        var x32 = x.to_type(ScalarType.Float32);
        if (centered) x32 = x32 - x32.mean([-1], keepdim: true);              // cohere's LayerNorm: about the mean
        var variance = x32.pow(HeldScalars.Two).mean([-1], keepdim: true);    // (numTokens, 1); square() makes an unheld 2
        // add(scalar, alpha) with both held: TorchSharp's `tensor + scalar` passes a temporary alpha of 1 to the native
        // call, which the GC may finalize during it (a 500 seen once in a fuzzing run: libtorch read a freed Scalar)
        var normalised = x32 * variance.add(epsilon, HeldScalars.One).rsqrt();
        var result = kind switch
        {
            RmsNormWeight.BeforeRounding => (normalised * weight.to_type(ScalarType.Float32)).to_type(x.dtype),
            RmsNormWeight.OffsetBeforeRounding => (normalised * weight.to_type(ScalarType.Float32).add(HeldScalars.One, HeldScalars.One)).to_type(x.dtype),
            _ => weight * normalised.to_type(x.dtype),
        };
        return result.MoveToOuterDisposeScope();
    }

    /// The pre-norm block's add + norm, out of place: (weight * RMSNorm(residual + x), residual + x).
    public static (Tensor Normed, Tensor Residual) AddRmsNorm(Tensor x, Tensor residual, Tensor weight, double eps,
        RmsNormWeight kind = RmsNormWeight.AfterRounding, bool centered = false, Tensor? bias = null)
    {
        var sum = residual.add(x, HeldScalars.One);
        return (RmsNorm(sum, weight, eps, kind, centered, bias), sum);
    }

    /// An ungated MLP's activation of x: GELU's tanh approximation (starcoder2's) or relu(x)^2 (Nemotron's).
    public static Tensor UngatedActivation(Tensor x, MlpActivation activation) => activation switch
    {
        MlpActivation.GeluTanh => x.gelu(TorchSharp.Modules.GELU.Approximate.tanh),
        MlpActivation.Relu2 => x.relu().pow(HeldScalars.Two),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "not an ungated MLP's plain activation"),
    };

    /// RMSNorm (or with centered cohere's LayerNorm) of the query heads (qWeight) and the key heads (kWeight) of a fused
    /// projection, each head on its own by a (headDim) weight they share (qwen3, gemma3) or a (heads, headDim) weight
    /// of their own (Command R+), or all of q and all of k at once (wholeProjection: olmo2); v passes through.
    public static Tensor HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps, int numHeads, int numKVHeads, int headDim,
        RmsNormWeight kind = RmsNormWeight.AfterRounding, bool centered = false, bool wholeProjection = false)
    {
        var (q, k, v) = Split(qkv, numHeads, numKVHeads, headDim);
        if (wholeProjection)
            (q, k) = (RmsNorm(q.flatten(1), qWeight, eps, kind, centered).view(q.shape), RmsNorm(k.flatten(1), kWeight, eps, kind, centered).view(k.shape));
        else
            (q, k) = (RmsNorm(q, qWeight, eps, kind, centered), RmsNorm(k, kWeight, eps, kind, centered));
        return Join(q, k, v);
    }

    /// x * cos + rotate_half(x) * sin over the first rotaryDim dimensions (rotate_half(x) = cat(-x2, x1), or with
    /// interleaved the pairs' (-x_odd, x_even)); the rest pass through. cos and sin are cast to x's dtype first, as
    /// transformers does.
    // x (numTokens, heads, headDim), cos and sin (numTokens, 1, rotaryDim / 2) float32 -> (numTokens, heads, headDim)
    public static Tensor Rotate(Tensor x, Tensor cos32, Tensor sin32, int rotaryDim, bool interleaved = false,
        RotaryPrecision precision = RotaryPrecision.ModelDtype)
    {
        // the tables in the model's dtype unless ERNIE's; the turn in float32 for cohere and ERNIE, rounded once at the end
        var (cos, sin) = precision == RotaryPrecision.Float32 ? (cos32, sin32) : (cos32.to_type(x.dtype), sin32.to_type(x.dtype));
        var turned = x.narrow(-1, 0, rotaryDim);
        if (precision != RotaryPrecision.ModelDtype)
            (turned, cos, sin) = (turned.to_type(ScalarType.Float32), cos.to_type(ScalarType.Float32), sin.to_type(ScalarType.Float32));
        Tensor rotated;
        if (interleaved)
        {
            // GLM's and GPT-J's pairs (x0, x1), (x2, x3), ...: pair i turns by frequency i
            var pairs = turned.reshape([.. turned.shape[..^1], rotaryDim / 2, 2]);   // (numTokens, heads, rotaryDim / 2, 2)
            var (even, odd) = (pairs.select(-1, 0), pairs.select(-1, 1));
            rotated = stack([even * cos - odd * sin, (odd * cos).add(even * sin, HeldScalars.One)], dim: -1).flatten(-2);
        }
        else
        {
            var halves = turned.chunk(2, dim: -1);
            var (x1, x2) = (halves[0], halves[1]);             // (numTokens, heads, rotaryDim / 2) each
            rotated = cat([x1 * cos - x2 * sin, (x2 * cos).add(x1 * sin, HeldScalars.One)], dim: -1);
        }
        rotated = rotated.to_type(x.dtype);
        return rotaryDim == x.shape[^1] ? rotated : cat([rotated, x.narrow(-1, rotaryDim, x.shape[^1] - rotaryDim)], dim: -1);
    }

    /// silu(gate) * up, from gateUp (numTokens, 2 ffn) = [gate | up]: (numTokens, ffn).
    public static Tensor SiluAndMul(Tensor gateUp)
    {
        var halves = gateUp.chunk(2, dim: -1);                 // gate, up (numTokens, ffn) each
        return nn.functional.silu(halves[0]) * halves[1];
    }

    /// gpt-oss's experts' activation as transformers' GptOssExperts computes it (DecoderStep.ClampedGlu says what).
    public static Tensor ClampedGlu(Tensor gateUp, Tensor bias, Tensor expertOfRow, double limit)
    {
        using var max = limit.ToScalar();   // held through the calls (HeldScalars says why)
        using var min = (-limit).ToScalar();
        using var alpha = 1.702.ToScalar();
        var biased = gateUp.add(bias.index_select(0, expertOfRow), HeldScalars.One);
        var gate = biased[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)].clamp_max(max);
        var up = biased[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)].clamp(min, max);
        return up.add(HeldScalars.One, HeldScalars.One) * (gate * nn.functional.sigmoid(gate.mul(alpha)));
    }

    /// gelu(gate) * up with GELU's tanh approximation (gemma's GeGLU), from gateUp = [gate | up]: (numTokens, ffn).
    public static Tensor GeluTanhAndMul(Tensor gateUp)
    {
        var halves = gateUp.chunk(2, dim: -1);
        return halves[0].gelu(TorchSharp.Modules.GELU.Approximate.tanh) * halves[1];
    }

    /// xIELU (Apertus) of x (numTokens, ffn), its learned parameters one element each, computed as transformers'
    /// XIELUActivation does in the model's dtype: with ap = softplus(alphaP) and an = beta + softplus(alphaN),
    /// ap x^2 + beta x where x > 0, else (expm1(min(x, eps)) - x) an + beta x.
    public static Tensor Xielu(Tensor x, Tensor alphaP, Tensor alphaN, Tensor beta, Tensor eps)
    {
        var positive = Softplus(alphaP);
        var negative = beta.add(Softplus(alphaN), HeldScalars.One);   // held alphas: see RmsNorm
        var linear = beta * x;
        return where(x > HeldScalars.Zero, (positive * x * x).add(linear, HeldScalars.One),
            ((minimum(x, eps).expm1() - x) * negative).add(linear, HeldScalars.One));
    }

    /// softplus(x) with torch's default beta 1 and threshold 20: log1p(exp(x)), or x above the threshold, in float32 for
    /// a narrower dtype, as torch's kernel computes it; the same bits for half and bfloat16, and for the one-element
    /// parameters xIELU takes (torch's vectorized float32 path over many elements may differ in the last bit).
    /// TorchSharp's softplus makes its beta and threshold Scalars without holding them (SERV0002).
    static Tensor Softplus(Tensor x)
    {
        var wide = x.dtype is ScalarType.Float32 or ScalarType.Float64 ? x : x.to_type(ScalarType.Float32);
        return where(wide > SoftplusThreshold, wide, wide.exp().log1p()).to_type(x.dtype);
    }

    static readonly Scalar SoftplusThreshold = 20.ToScalar();

    /// The q, k and v heads of a fused projection, as views.
    // qkv (numTokens, (H + 2G) D) -> q (numTokens, H, D), k and v (numTokens, G, D)
    public static (Tensor Q, Tensor K, Tensor V) Split(Tensor qkv, int numHeads, int numKVHeads, int headDim)
    {
        var (n, h, g, d) = (qkv.shape[0], (long)numHeads, (long)numKVHeads, (long)headDim);
        return (qkv.narrow(-1, 0, h * d).view(n, h, d), qkv.narrow(-1, h * d, g * d).view(n, g, d), qkv.narrow(-1, (h + g) * d, g * d).view(n, g, d));
    }

    // q (numTokens, H, D), k and v (numTokens, G, D) -> (numTokens, (H + 2G) D)
    public static Tensor Join(Tensor q, Tensor k, Tensor v) =>
        cat([q.flatten(1), k.flatten(1), v.flatten(1)], dim: -1);
}
