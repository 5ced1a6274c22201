using System.Text.Json;

namespace Serving.Engine.Tokenization;

/// A token matched in the text before any other processing (tokenizers' AddedToken). LStrip / RStrip: the
/// match swallows the whitespace on that side; SingleWord: it matches only between non-word characters;
/// Normalized: it is looked for in the normalized text rather than the raw text.
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized)
{
    public static AddedToken FromJson(JsonElement token, int id) => new(
        id,
        token.GetProperty("content").GetString() ?? throw new InvalidDataException("added token without content"),
        Flag(token, "special"),
        Flag(token, "single_word"),
        Flag(token, "lstrip"),
        Flag(token, "rstrip"),
        // tokenizers' default: special tokens are matched on raw text, other added tokens on normalized text.
        token.TryGetProperty("normalized", out var normalized) ? normalized.GetBoolean() : !Flag(token, "special"));

    static bool Flag(JsonElement token, string name) =>
        token.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.True;
}
