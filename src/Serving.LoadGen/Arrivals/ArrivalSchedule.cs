namespace Serving.LoadGen.Arrivals;

/// When each request of a trace is sent, in seconds after the start, as vLLM's benchmark does it: the first at 0,
/// then gaps drawn from a gamma distribution of shape `burstiness` and mean 1 / rate. Burstiness 1 is a Poisson
/// process; below 1 arrivals come in bursts, above 1 they are more even. An infinite rate sends all at once.
internal static class ArrivalSchedule
{
    public static double[] Offsets(int numRequests, double requestRate, double burstiness, int seed)
    {
        if (requestRate <= 0) throw new ArgumentException($"--request-rate must be positive, got {requestRate}");
        if (burstiness <= 0) throw new ArgumentException($"--burstiness must be positive, got {burstiness}");
        var offsets = new double[numRequests];
        if (double.IsPositiveInfinity(requestRate)) return offsets;
        var sampler = new GammaSampler(new Random(seed));
        var scale = 1.0 / (requestRate * burstiness);   // mean gap = shape * scale = 1 / rate
        for (var i = 1; i < numRequests; i++)
            offsets[i] = offsets[i - 1] + sampler.Next(burstiness, scale);
        return offsets;
    }
}
