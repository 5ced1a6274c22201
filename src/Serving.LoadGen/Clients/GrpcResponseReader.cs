using System.Text;
using Serving.Grpc.V1;

namespace Serving.LoadGen.Clients;

/// Folds the messages of one Generate stream into the request's result, as SseChunkReader does for SSE:
/// an arrival on the timer per chunk that carries output, the generated text, token counts, and the usage of
/// the final message (the server sends it last, after every chunk).
internal sealed class GrpcResponseReader(StreamTimer timer, Action<string>? onText = null)
{
    readonly StringBuilder _text = new();
    int _tokenIdsSeen;

    public string Text => _text.ToString();
    public Usage? Usage { get; private set; }
    /// Whether the final message arrived; a stream that ends without it did not complete.
    public bool Done => Usage is not null;

    /// Tokens generated: every chunk lists its new token ids (whole tokens, even where the text waits for
    /// the rest of a character), so their count is exact without trusting the usage figure.
    public int OutputTokens => _tokenIdsSeen;

    public void OnResponse(GenerateResponse response)
    {
        if (response.Final is { } final)
            Usage = final.Usage ?? new Usage();
        else if (response.Chunk is { } chunk)
            OnChunk(chunk);
    }

    void OnChunk(GenerateChunk chunk)
    {
        // a chunk carries output when it has text, or token ids whose bytes do not yet complete a character;
        // the last chunk of a sequence may carry neither (only why it finished)
        if (chunk.Text.Length == 0 && chunk.TokenIds.Count == 0) return;
        timer.OnOutput();
        _text.Append(chunk.Text);
        if (chunk.Text.Length > 0) onText?.Invoke(chunk.Text);
        _tokenIdsSeen += chunk.TokenIds.Count;
    }
}
