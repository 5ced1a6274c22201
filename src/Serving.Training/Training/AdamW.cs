using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Training.Training;

/// AdamW (Loshchilov and Hutter, decoupled weight decay) over flat float32 tensors: the master weights, their
/// moments and the decay mask, so one step is a handful of kernels whatever the number of parameters.
internal sealed class AdamW : IDisposable
{
    readonly Tensor _decayMask;   // (total) float32: 1 where weight decay applies

    public AdamW(Tensor decayMask, double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8, double weightDecay = 0.1)
    {
        _decayMask = decayMask.DetachFromDisposeScope();
        (Beta1, Beta2, Eps, WeightDecay) = (beta1, beta2, eps, weightDecay);
        ExpAvg = zeros_like(decayMask).DetachFromDisposeScope();
        ExpAvgSq = zeros_like(decayMask).DetachFromDisposeScope();
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    /// Steps taken (bias correction counts from it).
    public int StepCount { get; set; }
    /// (total) float32 first and second moments.
    public Tensor ExpAvg { get; }
    public Tensor ExpAvgSq { get; }

    /// weights -= lr * (m̂ / (sqrt(v̂) + eps) + weightDecay * mask * weights). weights, gradients (total) float32.
    public void Step(Tensor weights, Tensor gradients, double lr)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        StepCount++;
        var correction1 = 1 - Math.Pow(Beta1, StepCount);
        var correction2 = 1 - Math.Pow(Beta2, StepCount);
        using Scalar beta1 = Beta1.ToScalar(), keep1 = (1 - Beta1).ToScalar(), beta2 = Beta2.ToScalar(), keep2 = (1 - Beta2).ToScalar(),
            decay = (-lr * WeightDecay).ToScalar(), root2 = Math.Sqrt(correction2).ToScalar(), eps = Eps.ToScalar(),
            rate = (-lr / correction1).ToScalar();
        ExpAvg.mul_(beta1).add_(gradients, alpha: keep1);
        ExpAvgSq.mul_(beta2).addcmul_(gradients, gradients, value: keep2);
        weights.addcmul_(weights, _decayMask, value: decay);
        var denominator = ExpAvgSq.sqrt().div_(root2).add_(eps, Serving.Engine.HeldScalars.One);
        weights.addcdiv_(ExpAvg, denominator, value: rate);
    }

    public void Dispose()
    {
        _decayMask.Dispose();
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
