using Serving.Engine;
using Serving.Engine.Model;
using Serving.Engine.Pooling;
using Serving.Engine.Sampling;
using Serving.Engine.Config;
using ConfigOverrides = Serving.Engine.Config.HfOverrides;

namespace Serving.Server.Options;

/// Everything the HTTP server is configured with, bound from the "Server" configuration section
/// (appsettings.json, environment variables such as Server__Port, then command-line flags, last one wins).
/// Defaults follow vLLM where the concept is the same.
public sealed class ServerOptions
{
    public const string Section = "Server";

    /// Address to listen on: an IP address or "localhost".
    public string Host { get; set; } = "0.0.0.0";
    public int Port { get; set; } = 8000;
    /// A Unix domain socket to serve HTTP on instead of Host and Port (vLLM's --uds); the gRPC port stays TCP.
    public string? Uds { get; set; }
    /// Port of the gRPC API (HTTP/2 without TLS) on the same host; null serves no gRPC.
    public int? GrpcPort { get; set; }
    /// Serve gRPC server reflection (grpcurl, Postman list the services without the proto).
    public bool EnableGrpcReflection { get; set; }
    /// Checkpoint folder; null serves the tiny model that ships in DefaultModel/.
    public string? Model { get; set; }
    /// Log-probability listings name tokens "token_id:{id}" unless a request's return_tokens_as_token_ids says otherwise
    /// (vLLM's --return-tokens-as-token-ids).
    public bool ReturnTokensAsTokenIds { get; set; }
    /// vLLM's flags given that change nothing here, one a line with why (VllmOnlyFlags); logged once at start.
    public string? FlagsWithoutEffect { get; set; }
    /// Folder with the tokenizer files; defaults to the model folder, or to DefaultModel/ for a preset shape
    /// with random weights (llama3-8b, ...), which has no files of its own.
    public string? Tokenizer { get; set; }
    /// config.json fields that replace the model's, as a JSON object (vLLM's --hf-overrides), e.g.
    /// {"max_position_embeddings": 32768}.
    public string? HfOverrides { get; set; }
    /// Names clients put in "model", separated by spaces (vLLM's --served-model-name takes several); responses carry the
    /// first. Defaults to the --model string (vLLM), or "default" for the embedded model.
    public string? ServedModelName { get; set; }
    /// Serve LoRA adapters beside the model (vLLM's --enable-lora).
    public bool EnableLora { get; set; }
    /// The adapters, "name=path" each, separated by white space (vLLM's --lora-modules); a request's "model" names one.
    public string? LoraModules { get; set; }
    /// The largest adapter rank accepted (vLLM's --max-lora-rank).
    public int MaxLoraRank { get; set; } = 16;
    /// The most adapters loaded at once, at start and while serving (vLLM's --max-loras, default 1, at least the
    /// --lora-modules); the KV cache leaves room on the GPU for those not loaded at start.
    public int? MaxLoras { get; set; }
    /// POST /v1/load_lora_adapter and /v1/unload_lora_adapter (what vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING allows).
    public bool AllowRuntimeLoraUpdating { get; set; }
    public string Dtype { get; set; } = "auto";
    /// How the KV cache stores K and V: auto (the model's dtype), bfloat16, float16, float32.
    public string KvCacheDtype { get; set; } = "auto";
    /// FP8 KV cache: compute the scales from the first prompts' K and V.
    public bool CalculateKvScales { get; set; }
    /// Run every decode step eagerly (no CUDA graphs).
    public bool EnforceEager { get; set; }
    public string Device { get; set; } = "cpu";
    /// GPUs one model is split over (tensor parallelism, from --device's index on); CPU ranks on --device cpu.
    public int TensorParallelSize { get; set; } = 1;
    /// vLLM's --quantization: the checkpoint's weight quantization method, checked against its quantization_config
    /// (null: read from it); fp8 on an unquantized checkpoint quantizes its projections as it loads (GPU only).
    public string? Quantization { get; set; }
    /// 0 means the model's max_position_embeddings.
    public int MaxModelLen { get; set; }
    public int MaxNumSeqs { get; set; } = 256;
    public int MaxNumBatchedTokens { get; set; } = 8192;
    /// The most prompt tokens one request computes in a step (vLLM's --long-prefill-token-threshold); 0: no cap.
    public int LongPrefillTokenThreshold { get; set; }
    public int BlockSize { get; set; } = 16;
    public double GpuMemoryUtilization { get; set; } = 0.9;
    /// KV pool size in bytes (vLLM's --kv-cache-memory-bytes): given on CUDA it replaces GpuMemoryUtilization's sizing;
    /// null: on CUDA what GpuMemoryUtilization leaves, on CPU 256 MiB.
    public long? KvCacheMemory { get; set; }
    public int? NumGpuBlocksOverride { get; set; }
    public bool EnablePrefixCaching { get; set; } = true;
    /// Waiting sequences (a request with n counts n) beyond this are refused with 429.
    public int MaxNumQueuedReqs { get; set; } = 1024;
    /// Most prompts one completions request may list.
    public int MaxPromptsPerRequest { get; set; } = 256;
    /// Most sequences (prompts x n) one request may ask for: bounds the work and the answer of one request.
    public int MaxSeqsPerRequest { get; set; } = 256;
    public long Seed { get; set; }
    /// Bearer keys every route but the probes requires, one of them (vLLM's --api-key, one or more: space-separated
    /// here); null reads vLLM's VLLM_API_KEY variable, and without it the server is open.
    public string? ApiKey { get; set; }

    /// The keys a request may present (ApiKey, else VLLM_API_KEY); empty: none is asked.
    public IReadOnlyList<string> ApiKeys =>
        (ApiKey ?? Environment.GetEnvironmentVariable("VLLM_API_KEY"))?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) ?? [];
    /// /metrics requires the API key as well (by default it is open, as in vLLM, so Prometheus needs no secret).
    public bool EnableMetricsAuth { get; set; }
    /// Seconds running requests may take to finish after SIGTERM before they are aborted.
    public int ShutdownTimeout { get; set; } = 30;
    /// Largest logprobs / top_logprobs a request may ask for.
    public int MaxLogprobs { get; set; } = SamplingParams.MaxLogprobs;
    /// Largest n a request may ask for.
    public int MaxN { get; set; } = 16;
    /// Most stop strings one request may give.
    public int MaxStopSequences { get; set; } = 16;
    /// Largest request body in bytes (413 beyond it).
    public long MaxRequestBodyBytes { get; set; } = 8L << 20;
    /// Memory for stored Responses-API responses (their conversations, for GET /v1/responses/{id} and
    /// previous_response_id), least recently used evicted first; 0 stores none.
    public long MaxStoredResponseBytes { get; set; } = 256L << 20;
    /// Log prompt and output text (off: logs carry ids and counts only).
    public bool EnableLogRequests { get; set; }
    /// With EnableLogRequests: the most characters of each prompt and output a log line shows (vLLM's --max-log-len);
    /// null: all.
    public int? MaxLogLen { get; set; }
    /// Most open client connections over both ports; 0 derives it from the file-descriptor limit
    /// (ConnectionLimits.Resolve). Connections beyond it are closed as soon as they are accepted.
    public int MaxConnections { get; set; }
    /// Seconds a connection may stay idle before its first request or between requests (uvicorn's and so
    /// vLLM's default: 5); a connection that sends nothing is closed after it.
    public int TimeoutKeepAlive { get; set; } = 5;
    /// A chat template for every chat instead of the model's: a file's path, or the template itself (a value holding
    /// '{', '}' or a line break), as vLLM's --chat-template.
    public string? ChatTemplate { get; set; }
    /// A JSON object of chat template variables every chat gets unless its request's chat_template_kwargs set them
    /// (vLLM's --default-chat-template-kwargs), e.g. {"enable_thinking": false}.
    public string? DefaultChatTemplateKwargs { get; set; }
    /// How chat templates get a message's content (vLLM's --chat-template-content-format): auto (as the template reads
    /// it), string or openai.
    public string ChatTemplateContentFormat { get; set; } = "auto";
    /// Render a chat with the request's own chat_template (vLLM's --trust-request-chat-template).
    public bool TrustRequestChatTemplate { get; set; }
    /// Where default sampling parameters come from: "auto" (the model's generation_config.json, as vLLM),
    /// "vllm" (none: OpenAI's defaults), or a folder with a generation_config.json.
    public string GenerationConfig { get; set; } = "auto";
    /// fcfs or priority (vLLM's --scheduling-policy): under priority, requests' "priority" orders admission and
    /// preemption.
    public string SchedulingPolicy { get; set; } = "fcfs";
    /// Speculative decoding as a JSON object (vLLM's --speculative-config), e.g.
    /// {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}.
    public string? SpeculativeConfig { get; set; }
    /// What the server serves (vLLM's --runner): auto (from the architecture: a base model such as Qwen3Model pools),
    /// generate (completions, chat, responses) or pooling (embeddings).
    public string Runner { get; set; } = "auto";
    /// vLLM's --convert: auto, none, or embed (serve a *ForCausalLM checkpoint as an embedding model: the pooling runner).
    public string Convert { get; set; } = "auto";
    /// The pooling runner's defaults as a JSON object (vLLM's --pooler-config), e.g. {"pooling_type": "MEAN", "normalize": false}.
    public string? PoolerConfig { get; set; }
    /// A JSON object of generation_config.json sampling fields replacing GenerationConfig's (vLLM's
    /// --override-generation-config), e.g. {"temperature": 0.6, "max_new_tokens": 512}.
    public string? OverrideGenerationConfig { get; set; }
    /// Let the model decide when to call a tool (tool_choice "auto"); needs ToolCallParser (vLLM's flag).
    public bool EnableAutoToolChoice { get; set; }
    /// How tool calls are read from the model's text (vLLM's names, ToolCallParsers.Names).
    public string? ToolCallParser { get; set; }
    /// The role of chat answers when the prompt ends with the generation prompt (vLLM's --response-role); an answer that
    /// continues the final message (add_generation_prompt false) takes that message's role.
    public string ResponseRole { get; set; } = "assistant";
    /// How a reasoning model's thinking is read from its chat answers: deepseek_r1 or qwen3 (vLLM's names); the
    /// thinking then comes as "reasoning", apart from the content.
    public string? ReasoningParser { get; set; }
    /// Leave out the playground page at / (its routes then answer 404, or 401 without the API key).
    public bool DisablePlayground { get; set; }
    /// PEM files of the HTTP port's TLS certificate and its private key (vLLM's --ssl-certfile, --ssl-keyfile): the
    /// OpenAI API is then served over HTTPS. Both or neither.
    public string? SslCertfile { get; set; }
    public string? SslKeyfile { get; set; }
    /// Clients' certificates (vLLM's --ssl-cert-reqs, Python's ssl levels): 0 none asked, 1 checked when presented,
    /// 2 required; each must chain to a CA of SslCaCerts (a PEM file, vLLM's --ssl-ca-certs).
    public int SslCertReqs { get; set; }
    public string? SslCaCerts { get; set; }
    /// Every stream ends with a usage chunk, as if its stream_options asked for one (vLLM's --enable-force-include-usage).
    public bool EnableForceIncludeUsage { get; set; }
    /// Count the API requests in flight for GET /load (vLLM's --enable-server-load-tracking; 0 without).
    public bool EnableServerLoadTracking { get; set; }
    /// Every HTTP response carries X-Request-Id: the request's own, or a new one (vLLM's --enable-request-id-headers).
    public bool EnableRequestIdHeaders { get; set; }
    /// Leave out the periodic stats line (vLLM's --disable-log-stats).
    public bool DisableLogStats { get; set; }
    /// Seconds between stats lines (vLLM's VLLM_LOG_STATS_INTERVAL, 10).
    public double LogStatsInterval { get; set; } = 10;
    /// The path prefix the server is reached under behind a path-based proxy (vLLM's --root-path, FastAPI's root_path),
    /// such as "/llm": a request whose path starts with it is served as the path after it (a proxy that keeps the
    /// prefix), any other as it is (one that strips it). Null: none. The playground calls the API relative to its page.
    public string? RootPath { get; set; }
    /// RootPath as ASP.NET's path base: "/" alone and a trailing "/" are no prefix of their own (null where none).
    public string? PathBase => RootPath?.TrimEnd('/') is { Length: > 0 } path ? path : null;
    /// Cross-origin requests (vLLM's flags and defaults): origins, methods and headers a web page on another origin
    /// may use, as JSON lists ("*": any), and whether it may send credentials.
    public string AllowedOrigins { get; set; } = """["*"]""";
    public string AllowedMethods { get; set; } = """["*"]""";
    public string AllowedHeaders { get; set; } = """["*"]""";
    public bool AllowCredentials { get; set; }

    public string ResolvedModel => Model ?? DefaultModelDir;

    public IReadOnlyList<string> ServedModelNames =>
        ServedModelName?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } names ? names : [Model ?? "default"];

    /// The name responses carry: the first served name.
    public string ResolvedServedModelName => ServedModelNames[0];

    /// --lora-modules as the engine takes them; ArgumentException names an entry that is neither name=path nor vLLM's
    /// JSON form, {"name": ..., "path": ..., "base_model_name": ...}.
    public IReadOnlyList<Serving.Engine.Model.Lora.LoraAdapterSource> LoraAdapterSources =>
        [.. LoraModuleEntries.Split(LoraModules).Select(LoraModuleEntries.Read)];

    public static string DefaultModelDir => Path.Combine(AppContext.BaseDirectory, "DefaultModel");

    public EngineOptions ToEngineOptions() => new()
    {
        Model = ResolvedModel,
        Tokenizer = Tokenizer ?? (ModelPresets.IsPreset(ResolvedModel) ? DefaultModelDir : null),
        HfOverrides = HfOverrides is null ? null : ConfigOverrides.Parse(HfOverrides),
        ChatTemplate = ChatTemplate is null ? null : ChatTemplateFlags.Source(ChatTemplate),
        DefaultChatTemplateKwargs = DefaultChatTemplateKwargs is null ? null : ChatTemplateFlags.Kwargs(DefaultChatTemplateKwargs),
        ChatTemplateContentFormat = Serving.Engine.Templates.ChatContentFormats.Parse(ChatTemplateContentFormat),
        Dtype = Dtype,
        KVCacheDtype = KvCacheDtype,
        CalculateKVScales = CalculateKvScales,
        EnforceEager = EnforceEager,
        Device = Device,
        TensorParallelSize = TensorParallelSize,
        Quantization = Quantization,
        MaxModelLen = MaxModelLen,
        BlockSize = BlockSize,
        MaxNumSeqs = MaxNumSeqs,
        MaxNumBatchedTokens = MaxNumBatchedTokens,
        LongPrefillTokenThreshold = LongPrefillTokenThreshold,
        LoraModules = EnableLora ? LoraAdapterSources : [],
        MaxLoraRank = MaxLoraRank,
        // room for adapters beyond --lora-modules only where they can come: loaded while serving
        MaxLoras = EnableLora && AllowRuntimeLoraUpdating ? MaxLoras ?? Math.Max(1, LoraAdapterSources.Count) : null,
        SchedulingPolicy = SchedulingPolicy == "priority" ? Serving.Engine.SchedulingPolicy.Priority : Serving.Engine.SchedulingPolicy.Fcfs,
        SpeculativeConfig = SpeculativeConfig is null ? null : Serving.Engine.Speculative.SpeculativeConfig.Parse(SpeculativeConfig),
        Runner = Convert == "embed" ? RunnerType.Pooling : RunnerTypes.Parse(Runner),
        PoolerConfig = PoolerConfig is null ? null : PoolerConfigOverrides.Parse(PoolerConfig),
        GpuMemoryUtilization = GpuMemoryUtilization,
        KVCacheMemoryBytes = KvCacheMemory,
        NumGpuBlocksOverride = NumGpuBlocksOverride,
        EnablePrefixCaching = EnablePrefixCaching,
        MaxNumQueuedRequests = MaxNumQueuedReqs,
        Seed = Seed,
        GenerationConfig = GenerationConfig,
        OverrideGenerationConfig = OverrideGenerationConfig is null ? null : SamplingDefaults.Parse(OverrideGenerationConfig),
    };

    /// Start-up validation: every problem, one per line; empty when the options are usable.
    public IReadOnlyList<string> Validate() => [.. RangeErrors(), .. ValueErrors()];

    // numbers out of range, and settings that need one another
    List<string> RangeErrors()
    {
        var errors = new List<string>();
        void Check(bool ok, string message) { if (!ok) errors.Add(message); }
        Check(Port is >= 0 and <= 65535, $"port must be 0..65535 (got {Port})");
        Check(Host == "localhost" || System.Net.IPAddress.TryParse(Host, out _), $"host must be an IP address or localhost (got '{Host}')");
        Check(Host != "localhost" || Port != 0, "port 0 (any free port) needs an IP address as host, not localhost");
        Check(Uds is null || Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(Uds))), $"uds: the folder of '{Uds}' does not exist");
        if (Uds is not null && Connections.UnixSocketPath.Problem(Uds) is { } socketProblem) errors.Add(socketProblem);
        Check(GrpcPort is null or >= 0 and <= 65535, $"grpc-port must be 0..65535 (got {GrpcPort})");
        Check(GrpcPort is null or 0 || GrpcPort != Port, $"grpc-port must differ from port (both {Port})");
        Check(Host != "localhost" || GrpcPort != 0, "grpc-port 0 (any free port) needs an IP address as host, not localhost");
        Check(!EnableGrpcReflection || GrpcPort is not null, "enable-grpc-reflection needs grpc-port");
        Check(TensorParallelSize >= 1, $"tensor-parallel-size must be >= 1 (got {TensorParallelSize})");
        Check(MaxModelLen >= EngineOptions.AutoMaxModelLen, $"max-model-len must be >= 0, or auto (-1) (got {MaxModelLen})");
        Check(MaxNumSeqs >= 1, "max-num-seqs must be >= 1");
        Check(MaxLoraRank >= 1, $"max-lora-rank must be >= 1 (got {MaxLoraRank})");
        Check(MaxLoras is null or >= 1, $"max-loras must be >= 1 (got {MaxLoras})");
        Check(LoraModules is null || EnableLora, "lora-modules needs enable-lora");
        Check(!AllowRuntimeLoraUpdating || EnableLora, "allow-runtime-lora-updating needs enable-lora");
        Check(MaxNumBatchedTokens >= 1, "max-num-batched-tokens must be >= 1");
        Check(LongPrefillTokenThreshold >= 0, $"long-prefill-token-threshold must be >= 0 (got {LongPrefillTokenThreshold})");
        Check(BlockSize >= 1, "block-size must be >= 1");
        Check(GpuMemoryUtilization is > 0 and <= 1, "gpu-memory-utilization must be in (0, 1]");
        Check(KvCacheMemory is null or > 0, $"kv-cache-memory-bytes must be > 0 (got {KvCacheMemory})");
        Check(NumGpuBlocksOverride is null or >= 1, "num-gpu-blocks-override must be >= 1");
        Check(MaxNumQueuedReqs >= 1, "max-num-queued-reqs must be >= 1");
        Check(MaxPromptsPerRequest >= 1, "max-prompts-per-request must be >= 1");
        Check(MaxSeqsPerRequest >= 1, "max-seqs-per-request must be >= 1");
        Check(MaxConnections >= 0, "max-connections must be >= 0 (0: from the file-descriptor limit)");
        Check(TimeoutKeepAlive >= 1, "timeout-keep-alive must be >= 1");
        Check(MaxLogLen is null or >= 0, $"max-log-len must be >= 0 (got {MaxLogLen})");
        Check(LogStatsInterval > 0, $"log-stats-interval must be > 0 (got {LogStatsInterval})");
        Check(ShutdownTimeout >= 0, "shutdown-timeout must be >= 0");
        Check(MaxLogprobs is >= 0 and <= SamplingParams.MaxLogprobs, $"max-logprobs must be 0..{SamplingParams.MaxLogprobs}");
        Check(MaxN >= 1, "max-n must be >= 1");
        Check(MaxStopSequences >= 0, "max-stop-sequences must be >= 0");
        Check(MaxRequestBodyBytes >= 1024, "max-request-body-bytes must be >= 1024");
        Check(MaxStoredResponseBytes >= 0, $"max-stored-response-bytes must be >= 0 (got {MaxStoredResponseBytes})");
        Check(ApiKey is null || ApiKeys.Count > 0, "api-key must not be empty");
        Check(!string.IsNullOrWhiteSpace(ResponseRole), "response-role must not be empty");
        if (Quantization is not null && WeightQuantization.UnknownFlagValue(Quantization) is { } quantizationProblem) errors.Add(quantizationProblem);
        Check(!EnableAutoToolChoice || ToolCallParser is not null, "enable-auto-tool-choice needs tool-call-parser");
        Check(Convert != "embed" || Runner != "generate", "convert embed serves embeddings: it needs runner pooling or auto, not generate");
        return errors;
    }

    // values that must name something that exists or be read by their reader (whose ArgumentException names the flag)
    List<string> ValueErrors()
    {
        var errors = new List<string>();
        void Check(bool ok, string message) { if (!ok) errors.Add(message); }
        void Read(string? value, Action<string> reader)
        {
            if (value is null) return;
            try
            {
                reader(value);
            }
            catch (ArgumentException error)
            {
                errors.Add(error.Message);
            }
        }
        Check(Model is null || Directory.Exists(Model) || !Model.Contains('/'), $"model folder '{Model}' does not exist");
        Check(Tokenizer is null || Directory.Exists(Tokenizer), $"tokenizer folder '{Tokenizer}' does not exist");
        Check(GenerationConfig is "auto" or "vllm" || Directory.Exists(GenerationConfig),
            $"generation-config must be auto, vllm or a folder (got '{GenerationConfig}')");
        Check(SchedulingPolicy is "fcfs" or "priority", $"scheduling-policy must be fcfs or priority (got '{SchedulingPolicy}')");
        Check(ToolCallParser is null || OpenAI.Tools.ToolCallParsers.Names.Contains(ToolCallParser),
            $"tool-call-parser must be one of {string.Join(", ", OpenAI.Tools.ToolCallParsers.Names)} (got '{ToolCallParser}')");
        Check(ReasoningParser is null || OpenAI.Reasoning.ReasoningParser.Names.Contains(ReasoningParser),
            $"reasoning-parser must be one of {string.Join(", ", OpenAI.Reasoning.ReasoningParser.Names)} (got '{ReasoningParser}')");
        Read(LoraModules, _ =>
        {
            var sources = LoraAdapterSources;
            foreach (var source in sources)
            {
                if (!Directory.Exists(source.Path)) throw new ArgumentException($"lora-modules: adapter folder '{source.Path}' of '{source.Name}' does not exist");
                if (ServedModelNames.Contains(source.Name)) throw new ArgumentException($"lora-modules: '{source.Name}' is also a served model name");
            }
            if (sources.Select(s => s.Name).Distinct().Count() < sources.Count) throw new ArgumentException("lora-modules: an adapter name is given twice");
            if (MaxLoras is { } most && sources.Count > most) throw new ArgumentException($"lora-modules: {sources.Count} adapters are given, max-loras is {most}");
        });
        Read(HfOverrides, json => ConfigOverrides.Parse(json));
        Read(SpeculativeConfig, json => Serving.Engine.Speculative.SpeculativeConfig.Parse(json));
        Read(Runner, value => RunnerTypes.Parse(value));
        Check(Convert is "auto" or "none" or "embed",
            $"convert must be auto, none or embed (got '{Convert}'; classify and reward models are not served)");
        Read(PoolerConfig, json => PoolerConfigOverrides.Parse(json));
        Read(ChatTemplate, value => ChatTemplateFlags.Source(value));
        Read(DefaultChatTemplateKwargs, json => ChatTemplateFlags.Kwargs(json));
        Read(ChatTemplateContentFormat, value => Serving.Engine.Templates.ChatContentFormats.Parse(value));
        Read(OverrideGenerationConfig, json => SamplingDefaults.Parse(json));
        Check(RootPath is null || (RootPath.StartsWith('/') && !RootPath.Contains('?') && !RootPath.Contains('#')),
            $"root-path must be a path starting with '/' (got '{RootPath}')");
        Read(AllowedOrigins, json => Cors.CorsSetup.List(json, "allowed-origins"));
        Read(AllowedMethods, json => Cors.CorsSetup.List(json, "allowed-methods"));
        Read(AllowedHeaders, json => Cors.CorsSetup.List(json, "allowed-headers"));
        Read(SslCertfile ?? SslKeyfile, _ => Connections.TlsCertificate.Load(SslCertfile, SslKeyfile)?.Dispose());
        if (SslCertReqs != Connections.ClientCertificates.None)
            Read(SslCaCerts ?? "", _ => Connections.ClientCertificates.Load(SslCertReqs, SslCaCerts, https: SslCertfile is not null));
        return errors;
    }
}
