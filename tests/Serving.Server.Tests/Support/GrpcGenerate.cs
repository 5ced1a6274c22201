using Grpc.Core;
using Serving.Grpc.V1;
using GenerationClient = Serving.Grpc.V1.Generation.GenerationClient;

namespace Serving.Server.Tests.Support;

/// A whole Generate stream: its chunks in arrival order and the final message (checked to come last, once).
public sealed record GenerateResult(IReadOnlyList<GenerateChunk> Chunks, GenerateFinal Final)
{
    public int[] TokenIds(int index = 0) => [.. Chunks.Where(c => c.Index == index).SelectMany(c => c.TokenIds)];

    public string Text(int index = 0) => string.Concat(Chunks.Where(c => c.Index == index).Select(c => c.Text));

    public static async Task<GenerateResult> ReadAsync(GenerationClient client, GenerateRequest request,
        CancellationToken cancellationToken = default)
    {
        using var call = client.Generate(request, cancellationToken: cancellationToken);
        var chunks = new List<GenerateChunk>();
        GenerateFinal? final = null;
        await foreach (var response in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            Assert.Null(final);
            if (response.ResponseCase == GenerateResponse.ResponseOneofCase.Chunk) chunks.Add(response.Chunk);
            else final = response.Final;
        }
        Assert.NotNull(final);
        return new GenerateResult(chunks, final);
    }

    /// A greedy request for token ids (or text), max_tokens tokens, EOS ignored unless stopAtEos.
    public static GenerateRequest Greedy(int maxTokens, IEnumerable<int>? tokenIds = null, string? text = null, bool stopAtEos = false)
    {
        var request = new GenerateRequest
        {
            Model = RunningServer.Model,
            Sampling = new SamplingParameters { MaxTokens = maxTokens, Temperature = 0, IgnoreEos = !stopAtEos },
        };
        if (tokenIds is not null) request.TokenIds = new TokenIds { Ids = { tokenIds } };
        else request.Text = text ?? "Hello world";
        return request;
    }
}
