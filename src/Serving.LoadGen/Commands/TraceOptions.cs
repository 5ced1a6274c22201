using System.CommandLine;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Metrics;

namespace Serving.LoadGen.Commands;

/// Everything that defines a trace and how its results are reported; the same settings give the same requests
/// at the same arrival times.
internal sealed record TraceSettings
{
    public required DatasetOptions Dataset { get; init; }
    public string? TokenizerDir { get; init; }
    public required IReadOnlyList<double> Rates { get; init; }
    public double Burstiness { get; init; } = 1;
    public int? MaxConcurrency { get; init; }
    public bool IgnoreEos { get; init; }
    public IReadOnlyList<double> Percentiles { get; init; } = [90, 99];
    public GoodputSlo? Slo { get; init; }
    public string? ResultFile { get; init; }
    public string? ChartDir { get; init; }
    public bool ShowProgress { get; init; } = true;
    /// LoRA adapters the server serves: each request names one, drawn with the trace's seed (vLLM's --lora-modules).
    public IReadOnlyList<string> LoraModules { get; init; } = [];
}

/// The dataset, arrival, metric and output flags shared by `serve` and `compare` (vLLM's names).
internal sealed class TraceOptions
{
    readonly Option<string> _dataset = new("--dataset-name") { Description = "random, sharegpt or prefix-repetition.", DefaultValueFactory = _ => "random" };
    readonly Option<string?> _datasetPath = new("--dataset-path") { Description = "ShareGPT-format JSON file (--dataset-name sharegpt)." };
    readonly Option<string?> _tokenizer = new("--tokenizer") { Description = "Checkpoint folder whose tokenizer makes text prompts and counts ShareGPT tokens." };
    readonly Option<int> _numPrompts = new("--num-prompts") { Description = "Requests in the trace.", DefaultValueFactory = _ => 100 };
    readonly Option<string> _format = new("--prompt-format") { Description = "ids (token-id prompts) or text (decoded with --tokenizer).", DefaultValueFactory = _ => "ids" };
    readonly Option<int> _inputLen = new("--random-input-len") { Description = "Mean prompt length (random).", DefaultValueFactory = _ => 1024 };
    readonly Option<int> _outputLen = new("--random-output-len") { Description = "Mean output length (random, prefix-repetition).", DefaultValueFactory = _ => 128 };
    readonly Option<double> _rangeRatio = new("--random-range-ratio") { Description = "Lengths uniform in [len*(1-r), len*(1+r)].", DefaultValueFactory = _ => 0.0 };
    readonly Option<int?> _sharegptOutputLen = new("--sharegpt-output-len") { Description = "Fixed output length instead of the reference completion's." };
    readonly Option<int> _prefixLen = new("--prefix-len") { Description = "Shared prefix tokens (prefix-repetition).", DefaultValueFactory = _ => 256 };
    readonly Option<int> _suffixLen = new("--suffix-len") { Description = "Per-request suffix tokens (prefix-repetition).", DefaultValueFactory = _ => 256 };
    readonly Option<int> _numPrefixes = new("--num-prefixes") { Description = "Distinct prefixes (prefix-repetition).", DefaultValueFactory = _ => 10 };
    readonly Option<double> _rate = new("--request-rate") { Description = "Requests per second (Poisson/gamma arrivals); inf sends all at once.", DefaultValueFactory = _ => double.PositiveInfinity };
    readonly Option<double[]> _rates = new("--request-rates") { Description = "Several rates, run one after another.", AllowMultipleArgumentsPerToken = true };
    readonly Option<double> _burstiness = new("--burstiness") { Description = "Gamma shape of arrival gaps: 1 Poisson, <1 bursty, >1 even.", DefaultValueFactory = _ => 1.0 };
    readonly Option<int?> _maxConcurrency = new("--max-concurrency") { Description = "Most requests in flight." };
    readonly Option<bool> _ignoreEos = new("--ignore-eos") { Description = "Generate exactly the requested output lengths." };
    readonly Option<int> _seed = new("--seed") { Description = "Seed of prompts and arrivals.", DefaultValueFactory = _ => 0 };
    readonly Option<double[]> _percentiles = new("--percentiles") { Description = "Latency percentiles to report.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [90, 99] };
    readonly Option<string[]> _goodput = new("--goodput") { Description = "SLOs as KEY:MS (ttft, tpot, e2el), e.g. --goodput ttft:500 tpot:50.", AllowMultipleArgumentsPerToken = true };
    readonly Option<string?> _resultFile = new("--result-file") { Description = "Write the results as JSON here." };
    readonly Option<string?> _chartDir = new("--chart-dir") { Description = "Write PNG charts here (default: beside --result-file)." };
    readonly Option<bool> _noProgress = new("--no-progress") { Description = "No live progress bar." };
    readonly Option<string[]> _loraModules = new("--lora-modules") { Description = "LoRA adapter names the server serves; each request names one at random (seeded).", AllowMultipleArgumentsPerToken = true };

    public TraceOptions(Command command)
    {
        _dataset.AcceptOnlyFromAmong(DatasetFactory.Names);
        _format.AcceptOnlyFromAmong("ids", "text");
        _rate.CustomParser = result => ParseRate(result.Tokens.Single().Value);
        _rates.CustomParser = result => result.Tokens.Select(token => ParseRate(token.Value)).ToArray();
        Option[] all = [_dataset, _datasetPath, _tokenizer, _numPrompts, _format, _inputLen, _outputLen, _rangeRatio, _sharegptOutputLen,
            _prefixLen, _suffixLen, _numPrefixes, _rate, _rates, _burstiness, _maxConcurrency, _ignoreEos, _seed, _percentiles,
            _goodput, _resultFile, _chartDir, _noProgress, _loraModules];
        foreach (var option in all) command.Options.Add(option);
    }

    public TraceSettings Read(ParseResult parse)
    {
        var resultFile = parse.GetValue(_resultFile);
        return new TraceSettings
        {
            Dataset = ReadDataset(parse),
            TokenizerDir = parse.GetValue(_tokenizer),
            Rates = parse.GetValue(_rates) is { Length: > 0 } rates ? rates : [parse.GetValue(_rate)],
            Burstiness = parse.GetValue(_burstiness),
            MaxConcurrency = parse.GetValue(_maxConcurrency),
            IgnoreEos = parse.GetValue(_ignoreEos),
            Percentiles = parse.GetValue(_percentiles) ?? [90, 99],
            Slo = GoodputSlo.Parse(parse.GetValue(_goodput)),
            ResultFile = resultFile,
            ChartDir = parse.GetValue(_chartDir) ?? (resultFile is null ? null : Path.GetDirectoryName(Path.GetFullPath(resultFile))),
            ShowProgress = !parse.GetValue(_noProgress),
            LoraModules = parse.GetValue(_loraModules) ?? [],
        };
    }

    /// A request rate: a positive number, or inf for "all at once".
    public static double ParseRate(string text) =>
        text.Equals("inf", StringComparison.OrdinalIgnoreCase) ? double.PositiveInfinity
        : double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var rate) && rate > 0 ? rate
        : throw new ArgumentException($"a request rate is a positive number or inf, got '{text}'");

    DatasetOptions ReadDataset(ParseResult parse) => new()
    {
        Name = parse.GetValue(_dataset)!,
        NumPrompts = parse.GetValue(_numPrompts),
        Seed = parse.GetValue(_seed),
        Format = parse.GetValue(_format) == "text" ? PromptFormat.Text : PromptFormat.Ids,
        RandomInputLen = parse.GetValue(_inputLen),
        RandomOutputLen = parse.GetValue(_outputLen),
        RandomRangeRatio = parse.GetValue(_rangeRatio),
        DatasetPath = parse.GetValue(_datasetPath),
        ShareGptOutputLen = parse.GetValue(_sharegptOutputLen),
        PrefixLen = parse.GetValue(_prefixLen),
        SuffixLen = parse.GetValue(_suffixLen),
        NumPrefixes = parse.GetValue(_numPrefixes),
    };
}
