using Grpc.Core;
using Grpc.Net.Client;
using Serving.Grpc.V1;
using Serving.LoadGen.Datasets;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Clients;

/// The gRPC API (protos/serving/v1): a streaming Generate per request. Arrivals are stamped per chunk that
/// carries output (GrpcResponseReader), as the OpenAI backend stamps SSE chunks, so TTFT and ITL mean the same
/// on both. A failed call (refused, or ended mid-stream) becomes a failed outcome carrying its gRPC status.
internal sealed class GrpcBackend : IGenerationBackend
{
    readonly GrpcChannel _channel;
    readonly Generation.GenerationClient _client;
    readonly Metadata _headers = [];
    readonly bool _chat;

    public GrpcBackend(Uri address, string? apiKey, bool chat)
    {
        _chat = chat;
        // one HTTP/2 connection carries ~100 streams; a load test needs more than one
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) };
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler });
        _client = new Generation.GenerationClient(_channel);
        if (apiKey is not null) _headers.Add("authorization", $"Bearer {apiKey}");
    }

    public async Task<ServerInfo> GetServerInfoAsync(string? model, CancellationToken cancellationToken)
    {
        var info = await _client.GetModelInfoAsync(new GetModelInfoRequest { Model = model ?? "" }, _headers, cancellationToken: cancellationToken);
        return new ServerInfo
        {
            ModelId = info.Id, MaxModelLen = info.MaxModelLen, VocabSize = info.VocabSize,
            NumAttentionHeads = info.NumAttentionHeads, NumKVHeads = info.NumKeyValueHeads, HeadDim = info.HeadDim,
            Dtype = info.Dtype, BlockSize = info.BlockSize, KVBytesPerToken = info.KvBytesPerToken,
            KVCapacityTokens = info.KvCapacityTokens,
        };
    }

    public async Task<RequestOutcome> SendAsync(BenchRequest request, GenerationSettings settings, CancellationToken cancellationToken)
    {
        var timer = new StreamTimer();
        try
        {
            using var call = _client.Generate(Request(request, settings), _headers, cancellationToken: cancellationToken);
            var responses = new GrpcResponseReader(timer, settings.OnText);
            await foreach (var response in call.ResponseStream.ReadAllAsync(cancellationToken))
                responses.OnResponse(response);
            if (!responses.Done) return Failed(request, "stream ended without the final message");
            return RequestOutcome.Streamed(request.Index, timer, responses.Usage!.PromptTokens, responses.OutputTokens, responses.Text);
        }
        catch (RpcException error) when (error.StatusCode != StatusCode.Cancelled || !cancellationToken.IsCancellationRequested)
        {
            return Failed(request, $"gRPC {error.StatusCode}: {error.Status.Detail}");
        }
    }

    GenerateRequest Request(BenchRequest request, GenerationSettings settings)
    {
        var generate = new GenerateRequest
        {
            Model = request.Model ?? settings.Model,
            Sampling = new SamplingParameters
            {
                MaxTokens = request.OutputLength, Temperature = (float)settings.Temperature, IgnoreEos = settings.IgnoreEos,
            },
        };
        if (_chat)
            generate.Chat = new ChatInput { Messages = { new ChatMessage { Role = "user", Content = TextOf(request) } } };
        else if (request.Prompt.Text is { } text)
            generate.Text = text;
        else
            generate.TokenIds = new TokenIds { Ids = { request.Prompt.TokenIds! } };
        return generate;
    }

    static string TextOf(BenchRequest request) =>
        request.Prompt.Text ?? throw new ArgumentException("chat input takes text prompts: use --prompt-format text");

    static RequestOutcome Failed(BenchRequest request, string error) => RequestOutcome.Failed(request.Index, 0, error);

    public ValueTask DisposeAsync()
    {
        _channel.Dispose();
        return ValueTask.CompletedTask;
    }
}
