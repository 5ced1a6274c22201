namespace Serving.LoadGen.Datasets;

/// Groups of requests sharing a prefix (vLLM's prefix-repetition dataset): NumPrefixes random prefixes of
/// PrefixLen tokens, each followed by its own random suffix of SuffixLen tokens; requests are spread evenly
/// over the prefixes and shuffled, so a prefix cache sees each prefix come back at random times.
internal static class PrefixRepetitionDataset
{
    public static IReadOnlyList<BenchRequest> Create(DatasetOptions options, TokenSpace tokens)
    {
        if (options.NumPrefixes < 1 || options.NumPrefixes > options.NumPrompts)
            throw new ArgumentException($"--num-prefixes must be in 1..--num-prompts ({options.NumPrompts}), got {options.NumPrefixes}");
        var rng = new Random(options.Seed);
        var prefixes = Enumerable.Range(0, options.NumPrefixes).Select(_ => RandomIds(rng, tokens, options.PrefixLen)).ToArray();
        var order = Enumerable.Range(0, options.NumPrompts).ToArray();
        rng.Shuffle(order);
        var requests = new BenchRequest[options.NumPrompts];
        for (var i = 0; i < requests.Length; i++)
        {
            // request i uses prefix order[i] % numPrefixes: every prefix serves NumPrompts / NumPrefixes requests (+-1)
            int[] ids = [.. prefixes[order[i] % options.NumPrefixes], .. RandomIds(rng, tokens, options.SuffixLen)];
            requests[i] = new BenchRequest(i, tokens.Prompt(ids, options.Format), ids.Length, options.RandomOutputLen);
        }
        return requests;
    }

    static int[] RandomIds(Random rng, TokenSpace tokens, int length) =>
        Enumerable.Range(0, length).Select(_ => tokens.Id(rng.Next(tokens.NumOrdinaryIds))).ToArray();
}
