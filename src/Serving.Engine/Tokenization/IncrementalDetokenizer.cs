using System.Text;

namespace Serving.Engine.Tokenization;

/// Turns generated token ids into text as they arrive. Each Push returns only whole characters: bytes of an
/// unfinished UTF-8 character are held until the token completing it arrives, or until Flush, which gives what
/// remains (a character that never completed reads as U+FFFD). The concatenation of everything returned
/// equals the text the generated ids add after the prompt; with an empty prompt, Decode(generated ids).
/// Not thread-safe: one per sequence.
public sealed class IncrementalDetokenizer
{
    readonly ITokenizerBackend _backend;
    readonly IDecodeStream _stream;
    readonly bool _skipSpecialTokens;
    readonly StringBuilder _output = new();

    internal IncrementalDetokenizer(ITokenizerBackend backend, IReadOnlyList<int> promptIds, bool skipSpecialTokens)
    {
        _backend = backend;
        _skipSpecialTokens = skipSpecialTokens;
        _stream = backend.CreateDecodeStream(atStart: true);
        // The prompt's text is not ours to return; pushing it sets the decoder state that follows it.
        foreach (var id in promptIds) Push(id);
        _output.Clear();
    }

    public string Push(int tokenId)
    {
        if (_skipSpecialTokens && _backend.IsSpecial(tokenId)) return "";
        _stream.Push(tokenId, _output);
        return Take();
    }

    /// The end of generation: returns what was held back.
    public string Flush()
    {
        _stream.Flush(_output);
        return Take();
    }

    string Take()
    {
        var text = _output.ToString();
        _output.Clear();
        return text;
    }
}
