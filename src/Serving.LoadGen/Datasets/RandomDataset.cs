namespace Serving.LoadGen.Datasets;

/// vLLM's random dataset: each request gets an input length and an output length drawn uniformly from
/// [len * (1 - r), len * (1 + r)], and a prompt of consecutive vocabulary ids from a random offset, so prompts
/// differ from each other (no accidental prefix sharing) while being reproducible from the seed.
internal static class RandomDataset
{
    public static IReadOnlyList<BenchRequest> Create(DatasetOptions options, TokenSpace tokens)
    {
        var rng = new Random(options.Seed);
        var inputLens = Lengths(rng, options.NumPrompts, options.RandomInputLen, options.RandomRangeRatio, minimum: 1);
        var outputLens = Lengths(rng, options.NumPrompts, options.RandomOutputLen, options.RandomRangeRatio, minimum: 1);
        var requests = new BenchRequest[options.NumPrompts];
        for (var i = 0; i < requests.Length; i++)
        {
            long offset = rng.Next(tokens.NumOrdinaryIds);
            var ids = Enumerable.Range(0, inputLens[i]).Select(j => tokens.Id(offset + i + j)).ToArray();
            requests[i] = new BenchRequest(i, tokens.Prompt(ids, options.Format), ids.Length, outputLens[i]);
        }
        return requests;
    }

    /// n lengths uniform in [floor(len * (1 - ratio)), ceil(len * (1 + ratio))], at least minimum.
    public static int[] Lengths(Random rng, int n, int length, double ratio, int minimum)
    {
        if (ratio is < 0 or >= 1) throw new ArgumentException($"--random-range-ratio must be in [0, 1), got {ratio}");
        var low = Math.Max(minimum, (int)Math.Floor(length * (1 - ratio)));
        var high = Math.Max(low, (int)Math.Ceiling(length * (1 + ratio)));
        return Enumerable.Range(0, n).Select(_ => rng.Next(low, high + 1)).ToArray();
    }
}
