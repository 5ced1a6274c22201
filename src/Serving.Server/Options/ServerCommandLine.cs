using System.CommandLine;
using System.Globalization;
using Serving.Engine;

namespace Serving.Server.Options;

/// The command line: vLLM's flag names, each mapped onto a key of the "Server" configuration section so
/// that a flag, an appsettings.json entry and an environment variable (Server__MaxNumSeqs) are one setting.
/// Flags are applied last and win. No flag has a parser default: an absent flag leaves the key alone. As `vllm serve
/// MODEL`, the model may come first without --model; vLLM's flags that have no setting here are VllmOnlyFlags'. As
/// `vllm serve --config FILE`, a YAML file may give flags too (ConfigFile); Parse reads it.
public static class ServerCommandLine
{
    /// Builds the root command; its action receives the configuration overrides the flags give.
    public static RootCommand Create(Func<IReadOnlyDictionary<string, string?>, CancellationToken, Task<int>> run)
    {
        var line = Line.Make("OpenAI-compatible LLM server (vLLM flag names). Every flag is also the " +
            "configuration key Server:<Name> (appsettings.json, or environment variable Server__<Name>), but " +
            "--uvicorn-log-level, which is Logging:LogLevel:Microsoft.AspNetCore.");
        line.Root.SetAction((parse, ct) => run(line.ToConfiguration(parse), ct));
        return line.Root;
    }

    /// Parses args for the command Create built, with a --config file's flags (those the command line does not give).
    public static ParseResult Parse(RootCommand command, string[] args) => command.Parse(ConfigFile.Expand(command, args), Parsing);

    /// How the command line is parsed: as vLLM's argparse, no `@file` token is read as a file of arguments (an API key
    /// may start with "@").
    internal static readonly ParserConfiguration Parsing = new() { ResponseFileTokenReplacer = null };

    /// Parses args into configuration overrides; throws ArgumentException listing the errors.
    public static IReadOnlyDictionary<string, string?> ToConfiguration(string[] args)
    {
        var line = Line.Make("");
        var parse = Parse(line.Root, args);
        if (parse.Errors.Count > 0)
            throw new ArgumentException(string.Join("; ", parse.Errors.Select(e => e.Message)));
        return line.ToConfiguration(parse);
    }

    /// The root command and what it reads: the flags, the model named first, vLLM's flags without a setting here.
    sealed record Line(RootCommand Root, IReadOnlyList<Flag> Flags, Argument<string?> ModelTag, IReadOnlyList<VllmOnlyFlags.Accepted> WithoutEffect)
    {
        public static Line Make(string description)
        {
            var root = new RootCommand(description);
            var flags = ServerCommandLine.Flags();
            foreach (var flag in flags) root.Options.Add(flag.Option);
            var withoutEffect = VllmOnlyFlags.AcceptedWithoutEffect();
            foreach (var flag in withoutEffect) root.Options.Add(flag.Option);
            foreach (var option in VllmOnlyFlags.AcceptedAtOneValue()) root.Options.Add(option);
            root.Options.Add(ConfigFile.Option(root));
            var modelTag = new Argument<string?>("model") { Description = "The model, as `vllm serve MODEL` names it: the same as --model.", Arity = ArgumentArity.ZeroOrOne };
            // a flag this command does not know would otherwise be taken for the model
            modelTag.Validators.Add(result =>
            {
                if (result.Tokens is [{ Value: var value }] && value.StartsWith('-')) result.AddError($"unknown flag {value} (--help lists them)");
            });
            root.Arguments.Add(modelTag);
            var model = flags.Single(f => f.Key == "Model").Option;
            // read as tokens: converting the model's value here would skip its own validator
            root.Validators.Add(command =>
            {
                var first = command.GetResult(modelTag) is { Tokens: [{ Value: var tag }] } ? tag : null;
                var flag = command.GetResult(model) is { Implicit: false, Tokens: [{ Value: var path }] } ? path : null;
                if (first is not null && flag is not null && first != flag)
                    command.AddError($"the model is named twice, first as '{first}' and by --model as '{flag}'");
            });
            return new Line(root, flags, modelTag, withoutEffect);
        }

        public Dictionary<string, string?> ToConfiguration(ParseResult parse)
        {
            var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            foreach (var flag in Flags)
            {
                if (parse.GetResult(flag.Option) is not { Implicit: false }) continue;
                var value = flag.ValueOf(parse);
                values[$"{flag.Section}:{flag.Key}"] = flag.Invert ? (!(bool)value!).ToString() : Format(value);
            }
            if (parse.GetValue(ModelTag) is { } model) values[$"{ServerOptions.Section}:Model"] = model;
            var given = WithoutEffect.Where(f => parse.GetResult(f.Option) is { Implicit: false }).Select(f => $"{f.Option.Name} ({f.Why})").ToList();
            if (given.Count > 0) values[$"{ServerOptions.Section}:{VllmOnlyFlags.WithoutEffectKey}"] = string.Join('\n', given);
            return values;
        }
    }

    static string? Format(object? value) => value switch
    {
        null => null,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    /// A flag and the configuration key it sets: Section:Key (the "Server" section but for the HTTP server's log level).
    sealed record Flag(Option Option, string Key, Func<ParseResult, object?> ValueOf, bool Invert = false, string Section = ServerOptions.Section);

    static Flag Make<T>(string name, string key, string description, params string[] aliases)
    {
        var option = new Option<T>(name, aliases) { Description = description };
        return new Flag(option, key, parse => parse.GetValue(option));
    }

    /// A whole number as vLLM reads its human-readable integers: decimal k, m, g, t (1k = 1,000; 25.6k = 25,600, a
    /// fraction left cut off) and binary K, M, G, T on whole numbers (32K = 32,768; 8G = 8 GiB). Flags only: the
    /// Server__ environment variables and appsettings.json take plain numbers.
    static Flag Count(string name, string key, string description, long max, params string[] aliases) => Count(name, key, description, max, null, aliases);

    /// auto: the value "auto" stands for (--max-model-len's -1).
    static Flag Count(string name, string key, string description, long max, long? auto, params string[] aliases)
    {
        var option = new Option<long>(name, aliases)
        {
            Description = $"{description} Also as 32K (32,768) or 25.6k (25,600).",
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value.Trim();
                if (auto is { } stand && text.Equals("auto", StringComparison.OrdinalIgnoreCase)) return stand;
                if (HumanCount(text) is { } value && value <= max) return value;
                result.AddError($"{name} {text} is not a whole number of at most {max} (suffixes: 1k = 1,000, 1K = 1,024; k m g t, K M G T)");
                return 0;
            },
        };
        return new Flag(option, key, parse => parse.GetValue(option));
    }

    static long? HumanCount(string text)
    {
        if (text.Length == 0) return null;
        var (factor, binary) = text[^1] switch
        {
            'k' => (1e3m, false), 'm' => (1e6m, false), 'g' => (1e9m, false), 't' => (1e12m, false),
            'K' => (1024m, true), 'M' => (1024m * 1024, true), 'G' => (1024m * 1024 * 1024, true), 'T' => (1024m * 1024 * 1024 * 1024, true),
            _ => (1m, false),
        };
        var digits = factor == 1m ? text : text[..^1];
        var styles = binary || factor == 1m ? NumberStyles.AllowLeadingSign : NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint;
        if (digits.TrimStart('-', '+').StartsWith('.') || !decimal.TryParse(digits, styles, CultureInfo.InvariantCulture, out var number)
            || Math.Abs(number) > 1e15m) return null;
        var value = decimal.Truncate(number * factor);
        return Math.Abs(value) <= long.MaxValue ? (long)value : null;
    }

    /// One or more values, kept as one setting separated by spaces.
    static Flag Names(string name, string key, string description)
    {
        var option = new Option<string[]>(name) { Description = description, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = true };
        return new Flag(option, key, parse => string.Join(' ', parse.GetValue(option) ?? []));
    }

    /// A log level by Python's names, onto Logging:LogLevel:category.
    static Flag LogLevel(string name, string category, string description)
    {
        Dictionary<string, string> levels = new()
        {
            ["critical"] = "Critical", ["error"] = "Error", ["warning"] = "Warning", ["info"] = "Information", ["debug"] = "Debug", ["trace"] = "Trace",
        };
        var option = new Option<string>(name) { Description = description };
        option.AcceptOnlyFromAmong([.. levels.Keys]);
        return new Flag(option, category, parse => levels[parse.GetValue(option)!], Section: "Logging:LogLevel");
    }

    static Flag Switch(string name, string key, string description, bool invert = false)
    {
        var option = new Option<bool>(name) { Description = description, Arity = ArgumentArity.ZeroOrOne };
        return new Flag(option, key, parse => parse.GetValue(option), invert);
    }

    static IReadOnlyList<Flag> Flags() =>
    [
        Make<string>("--host", "Host", "IP address to listen on, or localhost (default 0.0.0.0)."),
        LogLevel("--uvicorn-log-level", "Microsoft.AspNetCore", "The HTTP server's log level, as vLLM's for uvicorn: critical, error, warning, info, debug or trace (default warning)."),
        Make<int>("--port", "Port", "TCP port (default 8000; 0 picks a free one)."),
        Make<string>("--uds", "Uds", "Serve HTTP on this Unix domain socket instead of --host and --port (a socket a stopped server left is replaced; the gRPC port stays TCP)."),
        Make<int>("--grpc-port", "GrpcPort", "Also serve the gRPC API (serving.v1, HTTP/2 without TLS) on this port (default: off; 0 picks a free one)."),
        Switch("--enable-grpc-reflection", "EnableGrpcReflection", "Serve gRPC server reflection (for grpcurl and similar tools)."),
        Make<string>("--model", "Model", "Hugging Face checkpoint folder (default: the tiny model in DefaultModel/)."),
        Make<string>("--tokenizer", "Tokenizer", "Tokenizer folder (default: the model folder; DefaultModel/ for a preset such as llama3-8b)."),
        Make<string>("--hf-overrides", "HfOverrides", "config.json fields to replace, as a JSON object, e.g. '{\"max_position_embeddings\": 32768}'."),
        Names("--served-model-name", "ServedModelName", "Names clients use as \"model\", one or more; responses carry the first (default: the --model string, or \"default\")."),
        Switch("--enable-lora", "EnableLora", "Serve LoRA adapters beside the model (--lora-modules)."),
        Names("--lora-modules", "LoraModules", "LoRA adapters as name=path (PEFT folders), one or more; a request's \"model\" names one (needs --enable-lora)."),
        Make<int>("--max-lora-rank", "MaxLoraRank", "The largest LoRA rank an adapter may have (default 16)."),
        Make<int>("--max-loras", "MaxLoras", "The most LoRA adapters loaded at once, at start and while serving; the KV cache leaves GPU memory for them (default 1, at least the --lora-modules)."),
        Switch("--allow-runtime-lora-updating", "AllowRuntimeLoraUpdating", "Load and unload LoRA adapters while serving: POST /v1/load_lora_adapter, /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING)."),
        Make<string>("--dtype", "Dtype", "auto, float32, bfloat16 or float16 (default auto)."),
        Make<string>("--quantization", "Quantization", "How the checkpoint's weights are quantized: fp8, compressed-tensors, awq (awq_marlin), gptq (gptq_marlin) or mxfp4, as its config.json's quantization_config says (checked against it; default: read from it). Quantized weights are dequantized to --dtype as they load, except an FP8 checkpoint's projections scaled per tensor, per channel or per 128 x 128 block on a GPU that runs FP8 (kept in FP8 as stored). fp8 on a bf16/fp16 checkpoint stores its projections as FP8 with a scale per tensor and runs them on FP8 tensor cores (CUDA, sm_89+), as vLLM's online fp8.", "-q"),
        Make<string>("--kv-cache-dtype", "KvCacheDtype", "How the KV cache stores K and V: auto (the model's dtype), bfloat16, float16, float32, or fp8 (fp8_e4m3, CUDA only) (default auto)."),
        Switch("--enforce-eager", "EnforceEager", "Never replay CUDA graphs of decode steps (default: captured at start on CUDA)."),
        Switch("--calculate-kv-scales", "CalculateKvScales", "FP8 KV cache: scales from the first prompts' K and V (default: 1.0, or the checkpoint's k_scale/v_scale)."),
        Make<string>("--device", "Device", "cpu or cuda[:N] (default cpu)."),
        Make<int>("--tensor-parallel-size", "TensorParallelSize", "GPUs to split the model over by tensor parallelism, from --device's index on, joined by NCCL (default 1).", "-tp"),
        Count("--max-model-len", "MaxModelLen", "Longest prompt + completion in tokens (default: the model's max_position_embeddings); auto (or -1): the longest one sequence the KV cache holds, at most the model's.", int.MaxValue, auto: EngineOptions.AutoMaxModelLen),
        Make<int>("--max-num-seqs", "MaxNumSeqs", "Most sequences in one batch (default 256)."),
        Make<string>("--scheduling-policy", "SchedulingPolicy", "fcfs (first come, first served) or priority: requests' \"priority\" (lower first) orders admission and preemption (default fcfs)."),
        Make<string>("--runner", "Runner", "What to serve: auto (from the architecture: a base model such as Qwen3Model pools), generate (completions, chat, responses) or pooling (/v1/embeddings) (default auto)."),
        Make<string>("--convert", "Convert", "auto, none, or embed: serve a *ForCausalLM checkpoint as an embedding model (the pooling runner) (default auto)."),
        Make<string>("--pooler-config", "PoolerConfig", "The pooling runner's defaults as JSON: '{\"pooling_type\": \"MEAN\", \"normalize\": false}' (pooling_type LAST, CLS or MEAN; normalize; dimensions) (default: the checkpoint's sentence-transformers modules, else LAST, normalized).", "--override-pooler-config"),
        Make<string>("--speculative-config", "SpeculativeConfig", "Speculative decoding by prompt lookup, as JSON: '{\"method\": \"ngram\", \"num_speculative_tokens\": 4, \"prompt_lookup_max\": 4, \"prompt_lookup_min\": 2}' (default off)."),
        Count("--max-num-batched-tokens", "MaxNumBatchedTokens", "Most tokens in one engine step (default 8192).", int.MaxValue),
        Make<int>("--long-prefill-token-threshold", "LongPrefillTokenThreshold", "Most prompt tokens one request computes in a step, so long prompts prefill side by side and short ones start at once (default 0: no cap)."),
        Make<int>("--block-size", "BlockSize", "Tokens per KV-cache block (default 16)."),
        Make<double>("--gpu-memory-utilization", "GpuMemoryUtilization", "Fraction of GPU memory the engine may use (default 0.9)."),
        Count("--kv-cache-memory-bytes", "KvCacheMemory", "KV-cache size in bytes, per GPU; on CUDA it replaces --gpu-memory-utilization's sizing (default: what that leaves on CUDA, 256M on CPU).", long.MaxValue, "--kv-cache-memory"),
        Make<int>("--num-gpu-blocks-override", "NumGpuBlocksOverride", "Force the number of KV blocks."),
        Switch("--enable-prefix-caching", "EnablePrefixCaching", "Reuse KV blocks of shared prompt prefixes (default on)."),
        Switch("--no-enable-prefix-caching", "EnablePrefixCaching", "Turn prefix caching off.", invert: true),
        Make<int>("--max-num-queued-reqs", "MaxNumQueuedReqs", "Waiting sequences beyond this get 429 (a request with n counts n; default 1024)."),
        Make<int>("--max-prompts-per-request", "MaxPromptsPerRequest", "Most prompts in one completions request (default 256)."),
        Make<int>("--max-seqs-per-request", "MaxSeqsPerRequest", "Most sequences (prompts x n) in one request (default 256)."),
        Make<long>("--seed", "Seed", "Seed for requests without one (default 0)."),
        Names("--api-key", "ApiKey", "Require \"Authorization: Bearer <key>\", one of these keys, on every route but /health, /ping, /load, /version and /metrics (default: vLLM's VLLM_API_KEY variable, else open)."),
        Switch("--enable-metrics-auth", "EnableMetricsAuth", "Require the API key on /metrics as well (open by default, as in vLLM)."),
        Make<int>("--shutdown-timeout", "ShutdownTimeout", "Seconds running requests may finish after SIGTERM (default 30)."),
        Make<int>("--max-logprobs", "MaxLogprobs", "Largest logprobs/top_logprobs a request may ask (default 20)."),
        Switch("--return-tokens-as-token-ids", "ReturnTokensAsTokenIds", "Log-probability listings name each token \"token_id:{id}\", so that tokens whose text is not valid UTF-8 stay identifiable (a request's return_tokens_as_token_ids overrides it)."),
        Make<int>("--max-n", "MaxN", "Largest n a request may ask (default 16)."),
        Make<int>("--max-stop-sequences", "MaxStopSequences", "Most stop strings per request (default 16)."),
        Make<long>("--max-request-body-bytes", "MaxRequestBodyBytes", "Largest request body; 413 beyond (default 8388608)."),
        Make<long>("--max-stored-response-bytes", "MaxStoredResponseBytes", "Memory for stored /v1/responses answers (previous_response_id, GET /v1/responses/{id}), least recently used evicted first; 0 stores none (default 268435456)."),
        Make<int>("--max-connections", "MaxConnections", "Most open client connections, both ports together; more are closed at once (default: from the file-descriptor limit, at most 10000)."),
        Make<int>("--timeout-keep-alive", "TimeoutKeepAlive", "Seconds a connection may stay idle, before its first request or between requests (default 5)."),
        Make<string>("--chat-template", "ChatTemplate", "A chat template for every chat instead of the model's: a file, or the template itself."),
        Make<string>("--default-chat-template-kwargs", "DefaultChatTemplateKwargs", "A JSON object of chat template variables every chat gets unless its request sets them, e.g. '{\"enable_thinking\": false}'."),
        Make<string>("--chat-template-content-format", "ChatTemplateContentFormat", "How chat templates get a message's content: auto (as the template reads it: a list of parts where it loops over them, else one string), string (text parts joined by newlines) or openai (a list of {\"type\": \"text\", \"text\"} parts) (default auto)."),
        Switch("--trust-request-chat-template", "TrustRequestChatTemplate", "Render chats with a request's own chat_template (refused by default)."),
        Make<string>("--response-role", "ResponseRole", "The role of chat answers (default assistant); an answer that continues the final message (add_generation_prompt false) takes that message's role."),
        Make<string>("--generation-config", "GenerationConfig", "Sampling defaults: auto (the model's generation_config.json), vllm (none), or a folder holding a generation_config.json (default auto)."),
        Make<string>("--override-generation-config", "OverrideGenerationConfig", "Sampling defaults replacing --generation-config's, a JSON object in generation_config.json's names, e.g. '{\"temperature\": 0.6}'."),
        Switch("--enable-log-requests", "EnableLogRequests", "Log prompt and output text (off by default)."),
        Make<int>("--max-log-len", "MaxLogLen", "The most characters of each prompt and output those lines show (default: all)."),
        Make<string>("--ssl-certfile", "SslCertfile", "PEM file of the TLS certificate: serve the HTTP port over HTTPS (with --ssl-keyfile)."),
        Make<string>("--ssl-keyfile", "SslKeyfile", "PEM file of the certificate's private key."),
        Make<int>("--ssl-cert-reqs", "SslCertReqs", "Clients' TLS certificates, as Python's ssl levels: 0 none asked (default), 1 checked when a client presents one, 2 required; each must chain to a CA of --ssl-ca-certs."),
        Make<string>("--ssl-ca-certs", "SslCaCerts", "PEM file of the CA certificates clients' certificates must chain to (with --ssl-cert-reqs 1 or 2)."),
        Switch("--enable-force-include-usage", "EnableForceIncludeUsage", "Every completions and chat stream ends with a usage chunk, as if its stream_options asked include_usage."),
        Switch("--enable-server-load-tracking", "EnableServerLoadTracking", "Count the API requests in flight (a stream until it ends) for GET /load, {\"server_load\": N}, which load balancers read (0 without)."),
        Switch("--enable-request-id-headers", "EnableRequestIdHeaders", "Every HTTP response carries X-Request-Id: the request's own header, or a new id. A request's X-Request-Id (else its body's request_id) is always its response's id after the API's prefix (chatcmpl-..., cmpl-...)."),
        Switch("--disable-log-stats", "DisableLogStats", "Leave out the periodic line of throughput, requests and KV cache usage."),
        Make<double>("--log-stats-interval", "LogStatsInterval", "Seconds between those lines (default 10)."),
        Switch("--enable-auto-tool-choice", "EnableAutoToolChoice", "Let the model call tools on its own (tool_choice \"auto\"); needs --tool-call-parser."),
        Make<string>("--tool-call-parser", "ToolCallParser", "How tool calls are read from the output: llama3_json, hermes (Qwen2.5, Qwen3, Hermes), mistral, pythonic (Llama 3.2 / Llama 4 pythonic templates), granite (Granite 3), phi4_mini_json (Phi-4-mini), qwen3_coder (Qwen3-Coder), seed_oss (Seed-OSS) or openai (gpt-oss, with --reasoning-parser openai_gptoss)."),
        Make<string>("--reasoning-parser", "ReasoningParser", "How a reasoning model's thinking is read from chat answers, to come as \"reasoning\" apart from the content: deepseek_r1, qwen3, granite (Granite 3.2 / 3.3's thought-process phrases), seed_oss (Seed-OSS's <seed:think>), or openai_gptoss (gpt-oss's harmony channels)."),
        Switch("--disable-playground", "DisablePlayground", "Do not serve the playground page at / (served by default)."),
        Make<string>("--root-path", "RootPath", "The path prefix the server is reached under behind a path-based proxy, as FastAPI's root_path (e.g. /llm): requests under it are served without it, others as they are."),
        Make<string>("--allowed-origins", "AllowedOrigins", "Origins a web page may call the API from, a JSON list (default [\"*\"]: any)."),
        Make<string>("--allowed-methods", "AllowedMethods", "Methods a cross-origin request may use, a JSON list (default [\"*\"])."),
        Make<string>("--allowed-headers", "AllowedHeaders", "Headers a cross-origin request may send, a JSON list (default [\"*\"])."),
        Switch("--allow-credentials", "AllowCredentials", "Let cross-origin requests send credentials (off by default)."),
    ];
}
