namespace Serving.LoadGen.Arrivals;

/// Gamma-distributed draws from a seeded Random (Marsaglia and Tsang, 2000), with the shape < 1 boost
/// x * U^(1/shape). Mean shape * scale, variance shape * scale^2; shape 1 is the exponential distribution.
internal sealed class GammaSampler(Random rng)
{
    public double Next(double shape, double scale)
    {
        if (shape <= 0 || scale <= 0) throw new ArgumentOutOfRangeException(nameof(shape), "shape and scale must be positive");
        if (shape < 1)
            return Next(shape + 1, scale) * Math.Pow(Uniform(), 1 / shape);
        var d = shape - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = StandardNormal();
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            var u = Uniform();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v)) return d * v * scale;
        }
    }

    /// Uniform in (0, 1): never 0, so logarithms and powers stay finite.
    double Uniform() => 1.0 - rng.NextDouble();

    double StandardNormal() => Math.Sqrt(-2 * Math.Log(Uniform())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
