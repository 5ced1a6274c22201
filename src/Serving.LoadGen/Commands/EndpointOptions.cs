using System.CommandLine;
using Serving.LoadGen.Clients;

namespace Serving.LoadGen.Commands;

/// Where a server is and how to talk to it.
internal sealed record Endpoint(string Backend, Uri BaseUrl, string? Model, string? ApiKey);

/// --backend, --api-key and the per-endpoint --base-url/--model flags (with a suffix for compare's A and B).
internal sealed class EndpointOptions
{
    public static readonly string[] Backends = ["openai", "openai-chat", "openai-embeddings", "grpc", "grpc-chat"];

    readonly Option<string> _backend = new("--backend")
    {
        Description = "openai (/v1/completions), openai-chat (/v1/chat/completions), openai-embeddings (/v1/embeddings, a server run with --runner pooling), grpc (Generate with a prompt) or grpc-chat (Generate with chat messages).",
        DefaultValueFactory = _ => "openai",
    };
    readonly Option<string?> _apiKey = new("--api-key") { Description = "Bearer key sent with every request." };
    readonly List<(Option<string> Url, Option<string?> Model)> _endpoints = [];

    public EndpointOptions(Command command, params string[] suffixes)
    {
        _backend.AcceptOnlyFromAmong(Backends);
        command.Options.Add(_backend);
        command.Options.Add(_apiKey);
        foreach (var suffix in suffixes)
        {
            var url = new Option<string>($"--base-url{suffix}")
            {
                Description = "Server address, e.g. http://localhost:8000 (gRPC: http://localhost:50051).",
                DefaultValueFactory = _ => "http://localhost:8000",
            };
            var model = new Option<string?>($"--model{suffix}") { Description = "Served model name (default: the server's first model)." };
            command.Options.Add(url);
            command.Options.Add(model);
            _endpoints.Add((url, model));
        }
    }

    public Endpoint Read(ParseResult parse, int index = 0) => new(parse.GetValue(_backend)!,
        new Uri(parse.GetValue(_endpoints[index].Url)!), parse.GetValue(_endpoints[index].Model), parse.GetValue(_apiKey));

    public static IGenerationBackend Connect(Endpoint endpoint) => endpoint.Backend switch
    {
        "openai" => new OpenAIBackend(endpoint.BaseUrl, endpoint.ApiKey, chat: false),
        "openai-chat" => new OpenAIBackend(endpoint.BaseUrl, endpoint.ApiKey, chat: true),
        "openai-embeddings" => new OpenAIEmbeddingsBackend(endpoint.BaseUrl, endpoint.ApiKey),
        "grpc" => new GrpcBackend(endpoint.BaseUrl, endpoint.ApiKey, chat: false),
        "grpc-chat" => new GrpcBackend(endpoint.BaseUrl, endpoint.ApiKey, chat: true),
        _ => throw new ArgumentException($"unknown --backend '{endpoint.Backend}'"),
    };
}
