namespace Serving.Engine.Config;

/// generation_config.json: the checkpoint's sampling defaults. Every member is null when the file does not set it.
public sealed record GenerationConfig
{
    public static readonly GenerationConfig Empty = new();

    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    public bool? DoSample { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public double? MinP { get; init; }
    public double? RepetitionPenalty { get; init; }
    public int? MaxNewTokens { get; init; }
    public int? MaxLength { get; init; }

    /// The fields SamplingDefaults takes, as generation_config.json spells them.
    public static readonly IReadOnlyList<string> SamplingFields = ["temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens"];

    /// The sampling defaults it recommends, as vLLM takes them (do_sample is not one: vLLM ignores it too).
    public SamplingDefaults SamplingDefaults => new()
    {
        Temperature = (float?)Temperature, TopP = (float?)TopP, TopK = TopK, MinP = (float?)MinP,
        RepetitionPenalty = (float?)RepetitionPenalty, MaxTokens = MaxNewTokens,
    };

    /// Reads generation_config.json from a checkpoint folder; a folder without one gives Empty.
    public static GenerationConfig Load(string checkpointDir)
    {
        var path = Path.Combine(checkpointDir, "generation_config.json");
        return File.Exists(path) ? Read(JsonFields.Load(path)) : Empty;
    }

    internal static GenerationConfig Read(JsonFields json) => new()
    {
        BosTokenId = json.Int("bos_token_id"),
        EosTokenIds = json.IntOrList("eos_token_id"),
        PadTokenId = json.Int("pad_token_id"),
        DoSample = json.Bool("do_sample"),
        Temperature = json.Double("temperature"),
        TopP = json.Double("top_p"),
        TopK = json.Int("top_k"),
        MinP = json.Double("min_p"),
        RepetitionPenalty = json.Double("repetition_penalty"),
        MaxNewTokens = json.Int("max_new_tokens"),
        MaxLength = json.Int("max_length"),
    };
}
