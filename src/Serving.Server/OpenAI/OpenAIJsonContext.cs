using System.Text.Json.Serialization;
using Serving.Server.Errors;
using Serving.Server.Telemetry;
using Serving.Server.Tokenize;

namespace Serving.Server.OpenAI;

/// Source-generated JSON for every wire type: snake_case names, nulls written (OpenAI's shape),
/// strict number handling (a number in a string is a 400).
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(ChatRequest))]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(ChatResponse))]
[JsonSerializable(typeof(ChatChunk))]
[JsonSerializable(typeof(Responses.ResponsesRequest))]
[JsonSerializable(typeof(Responses.ResponseObject))]
[JsonSerializable(typeof(Responses.ResponseEvent))]
[JsonSerializable(typeof(Responses.ItemList))]
[JsonSerializable(typeof(Responses.ResponseDeleted))]
[JsonSerializable(typeof(IReadOnlyList<Responses.ResponseItem>))]
[JsonSerializable(typeof(Pooling.EmbeddingRequest))]
[JsonSerializable(typeof(Pooling.EmbeddingResponse))]
[JsonSerializable(typeof(Pooling.PoolingResponse))]
[JsonSerializable(typeof(float[]))]
[JsonSerializable(typeof(Pooling.ClassifyRequest))]
[JsonSerializable(typeof(Pooling.ClassifyResponse))]
[JsonSerializable(typeof(Pooling.ScoreRequest))]
[JsonSerializable(typeof(Pooling.ScoreResponse))]
[JsonSerializable(typeof(Pooling.RerankRequest))]
[JsonSerializable(typeof(Pooling.RerankResponse))]
[JsonSerializable(typeof(LoraAdapterRequest))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(Health.VersionEndpoint.VersionResponse))]
[JsonSerializable(typeof(Health.ServerLoad.LoadResponse))]
[JsonSerializable(typeof(EngineStatsResponse))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(int))]
internal sealed partial class OpenAIJsonContext : JsonSerializerContext;
