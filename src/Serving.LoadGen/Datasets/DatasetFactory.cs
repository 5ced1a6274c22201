namespace Serving.LoadGen.Datasets;

/// Builds a trace's requests from the dataset options; the same options and seed give the same requests.
internal static class DatasetFactory
{
    public static readonly string[] Names = ["random", "sharegpt", "prefix-repetition"];

    public static IReadOnlyList<BenchRequest> Create(DatasetOptions options, TokenSpace tokens)
    {
        if (options.NumPrompts < 1) throw new ArgumentException($"--num-prompts must be at least 1, got {options.NumPrompts}");
        return options.Name switch
        {
            "random" => RandomDataset.Create(options, tokens),
            "sharegpt" => ShareGptDataset.Create(options, tokens),
            "prefix-repetition" => PrefixRepetitionDataset.Create(options, tokens),
            _ => throw new ArgumentException($"unknown --dataset-name '{options.Name}' (known: {string.Join(", ", Names)})"),
        };
    }
}
