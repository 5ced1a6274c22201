using Serving.Grpc.V1;
using Serving.LoadGen.Clients;

namespace Serving.LoadGen.Tests.Clients;

/// How one Generate stream is folded into a request's result: the same arrival rule as for SSE chunks.
public sealed class GrpcResponseReaderTests
{
    static GenerateResponse Chunk(string text, params int[] ids)
    {
        var chunk = new GenerateChunk { Text = text };
        chunk.TokenIds.Add(ids);
        return new GenerateResponse { Chunk = chunk };
    }

    static GenerateResponse Final(int promptTokens, int completionTokens) => new()
    {
        Final = new GenerateFinal { Usage = new Usage { PromptTokens = promptTokens, CompletionTokens = completionTokens } },
    };

    [Fact]
    public void EveryChunkWithTokensIsAnArrivalEvenBeforeItsCharacterIsComplete()
    {
        var timer = new StreamTimer();
        var printed = new List<string>();
        var reader = new GrpcResponseReader(timer, printed.Add);

        reader.OnResponse(Chunk("Hi", 10));
        reader.OnResponse(Chunk("", 200));          // the first byte of a two-byte character
        reader.OnResponse(Chunk("é", 201));
        reader.OnResponse(new GenerateResponse { Chunk = new GenerateChunk { FinishReason = FinishReason.Length } });
        Assert.False(reader.Done);
        reader.OnResponse(Final(promptTokens: 5, completionTokens: 3));

        Assert.True(reader.Done);
        Assert.Equal((3, 2), (timer.NumChunks, timer.Itl.Count));   // the finish-only chunk is no arrival
        Assert.Equal((3, 5), (reader.OutputTokens, reader.Usage!.PromptTokens));
        Assert.Equal("Hié", reader.Text);
        Assert.Equal(["Hi", "é"], printed);
    }

    [Fact]
    public void TokensAreCountedFromTheChunksIds()
    {
        var reader = new GrpcResponseReader(new StreamTimer());
        reader.OnResponse(Chunk("ab", 1, 2));
        reader.OnResponse(Chunk("c", 3));
        Assert.Equal(3, reader.OutputTokens);
        Assert.False(reader.Done);   // no final message yet: the request has not completed
    }
}
