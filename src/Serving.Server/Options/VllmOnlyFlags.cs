using System.CommandLine;

namespace Serving.Server.Options;

/// vLLM's flags that have no setting here, so that a `vllm serve` command line runs as it is: those that ask for what
/// this server always does (or that only matter where vLLM downloads or runs Python) are accepted and named at start
/// with why they change nothing; those whose other values ask for what is not built accept only the value that is
/// this server's behaviour, and refuse the rest naming the flag.
static class VllmOnlyFlags
{
    /// The configuration key that lists the accepted flags and why they change nothing (ServerOptions.FlagsWithoutEffect).
    public const string WithoutEffectKey = nameof(ServerOptions.FlagsWithoutEffect);

    /// A flag accepted with no effect: its option and why.
    public sealed record Accepted(Option Option, string Why);

    const string LocalFolder = "--model is a folder on this machine; nothing is downloaded";

    public static IReadOnlyList<Accepted> AcceptedWithoutEffect() =>
    [
        Switch("--trust-remote-code", "every architecture is built in; no code from a checkpoint runs"),
        Switch("--enable-chunked-prefill", "prefill is always chunked (--max-num-batched-tokens, --long-prefill-token-threshold)"),
        Switch("--no-enable-chunked-prefill", "prefill is always chunked (--max-num-batched-tokens, --long-prefill-token-threshold)"),
        Switch("--disable-log-requests", "requests are logged only with --enable-log-requests"),
        Switch("--enable-prompt-tokens-details", "usage always carries prompt_tokens_details.cached_tokens"),
        Switch("--disable-frontend-multiprocessing", "the HTTP server and the engine share one process"),
        Switch("--disable-custom-all-reduce", "tensor parallelism reduces through NCCL"),
        Switch("--disable-uvicorn-access-log", "requests are not access-logged (--uvicorn-log-level sets the HTTP server's log level)"),
        Switch("--disable-fastapi-docs", "no API documentation pages are served"),
        Value("--max-seq-len-to-capture", "CUDA graphs serve every context length (one graph per batch size)"),
        Value("--compilation-config", "nothing is compiled by torch.compile; decode steps replay CUDA graphs captured at start (--enforce-eager turns them off)", "-O"),
        Switch("--enable-reasoning", "a reasoning model's thinking is read whenever --reasoning-parser names a parser"),
        Switch("--enable-log-outputs", "--enable-log-requests logs the outputs with the prompts"),
        Value("--guided-decoding-backend", "structured output (JSON schema, regex, choice, grammar) runs on this server's own grammar engine"),
        Value("--structured-outputs-config", "structured output (JSON schema, regex, choice, grammar) runs on this server's own grammar engine"),
        Switch("--async-scheduling", "the engine thread schedules each step between steps; that host work is about 1% of a step's time"),
        Switch("--enable-expert-parallel", "a mixture-of-experts model runs on one GPU here, where expert parallelism splits nothing", "-ep"),
        Value("--limit-mm-per-prompt", "multimodal checkpoints serve their text decoder only; no image or audio input is read"),
        Value("--swap-space", "a preempted sequence is recomputed, never swapped to CPU memory (as in vLLM V1)"),
        Value("--download-dir", LocalFolder),
        Value("--revision", LocalFolder),
        Value("--code-revision", LocalFolder),
        Value("--tokenizer-revision", LocalFolder),
    ];

    /// Flags accepted only at the values that are this server's behaviour (their validators refuse the rest).
    public static IReadOnlyList<Option<string>> AcceptedAtOneValue() =>
    [
        Restrict("--pipeline-parallel-size", ["1"], "pipeline parallelism is not built (tensor parallelism is: --tensor-parallel-size)", "-pp"),
        Restrict("--data-parallel-size", ["1"], "one server serves one model replica; run more servers behind a load balancer", "-dp"),
        Restrict("--tokenizer-mode", ["auto", "hf", "slow"], "the checkpoint's tokenizer.json (or tokenizer.model) is read; mistral's tekken files are not"),
        Restrict("--load-format", ["auto", "safetensors"], "checkpoints are read from safetensors files"),
    ];

    static Accepted Switch(string name, string why, params string[] aliases) =>
        new(new Option<bool>(name, aliases) { Description = $"Accepted as vLLM's; no effect: {why}.", Arity = ArgumentArity.ZeroOrOne }, why);

    static Accepted Value(string name, string why, params string[] aliases) =>
        new(new Option<string>(name, aliases) { Description = $"Accepted as vLLM's; no effect: {why}." }, why);

    static Option<string> Restrict(string name, string[] values, string why, params string[] aliases)
    {
        var option = new Option<string>(name, aliases) { Description = $"Accepted as vLLM's at {string.Join(" or ", values)} only: {why}." };
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (value is not null && !values.Contains(value, StringComparer.OrdinalIgnoreCase))
                result.AddError($"{name} {value} is not served: {why} (accepted: {string.Join(", ", values)})");
        });
        return option;
    }
}
