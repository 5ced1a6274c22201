using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// A word the BPE model encodes on its own: merges never cross pieces. AtStart: the piece begins at offset 0 of
/// the original text (Metaspace's "first" prepend scheme looks at it).
internal readonly record struct Piece(string Text, bool AtStart);

/// tokenizers' pre-tokenizers: cut a piece into smaller pieces, possibly rewriting them.
internal interface IPreTokenizer
{
    void PreTokenize(Piece piece, List<Piece> output);
}

internal static class PreTokenizers
{
    /// GPT-2's word pattern, which ByteLevel applies when use_regex is set.
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    static readonly Lazy<TextPattern> Gpt2 = new(() => TextPattern.FromRegex(Gpt2Pattern));

    /// The "pre_tokenizer" object of tokenizer.json; null when the file has none (the whole piece is one word).
    public static IPreTokenizer? FromJson(JsonElement json) => json.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : Create(json);

    static IPreTokenizer Create(JsonElement json)
    {
        var type = json.GetProperty("type").GetString();
        return type switch
        {
            "Sequence" => new SequencePreTokenizer(json.GetProperty("pretokenizers").EnumerateArray().Select(Create).ToArray()),
            "Split" => new SplitPreTokenizer(
                TextPattern.FromJson(json.GetProperty("pattern")),
                SplitBehaviorFrom(json.GetProperty("behavior").GetString()),
                json.TryGetProperty("invert", out var invert) && invert.GetBoolean()),
            "ByteLevel" => new ByteLevelPreTokenizer(
                Bool(json, "add_prefix_space", true),
                Bool(json, "use_regex", true) ? Gpt2.Value : null),
            "Metaspace" => MetaspacePreTokenizer.FromJson(json),
            "Digits" => new SplitPreTokenizer(
                TextPattern.FromRegex(@"\p{N}"),
                Bool(json, "individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous,
                Invert: false),
            _ => throw new NotSupportedException($"tokenizer.json: pre_tokenizer type '{type}' is not supported"),
        };
    }

    internal static bool Bool(JsonElement json, string name, bool fallback) =>
        json.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : fallback;

    static SplitBehavior SplitBehaviorFrom(string? name) => name switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw new NotSupportedException($"tokenizer.json: Split behavior '{name}' is not supported"),
    };
}

internal sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> steps) : IPreTokenizer
{
    public void PreTokenize(Piece piece, List<Piece> output)
    {
        var pieces = new List<Piece> { piece };
        foreach (var step in steps)
        {
            var next = new List<Piece>();
            foreach (var current in pieces) step.PreTokenize(current, next);
            pieces = next;
        }
        output.AddRange(pieces);
    }
}

internal sealed record SplitPreTokenizer(TextPattern Pattern, SplitBehavior Behavior, bool Invert) : IPreTokenizer
{
    public void PreTokenize(Piece piece, List<Piece> output)
    {
        foreach (var (start, end) in SplitSpans.Apply(piece.Text, Pattern.Matches(piece.Text), Behavior, Invert))
            output.Add(new Piece(piece.Text[start..end], piece.AtStart && start == 0));
    }
}

/// Maps each piece to its byte-level spelling, after an optional leading space and GPT-2 word split.
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, TextPattern? wordPattern) : IPreTokenizer
{
    public void PreTokenize(Piece piece, List<Piece> output)
    {
        var text = addPrefixSpace && !piece.Text.StartsWith(' ') ? " " + piece.Text : piece.Text;
        if (wordPattern is null)
        {
            output.Add(piece with { Text = ByteLevelAlphabet.Encode(text) });
            return;
        }
        foreach (var (start, end) in SplitSpans.Apply(text, wordPattern.Matches(text), SplitBehavior.Isolated, invert: false))
            output.Add(new Piece(ByteLevelAlphabet.Encode(text[start..end]), piece.AtStart && start == 0));
    }
}

/// SentencePiece's whitespace handling: spaces become "▁", a "▁" is prepended (always, or only at the start of
/// the text), and with split each "▁" starts a new piece.
internal sealed class MetaspacePreTokenizer(char replacement, MetaspacePrependScheme scheme, bool split) : IPreTokenizer
{
    public static MetaspacePreTokenizer FromJson(JsonElement json)
    {
        var replacement = json.GetProperty("replacement").GetString()!;
        return new MetaspacePreTokenizer(replacement[0], PrependSchemeOf(json), PreTokenizers.Bool(json, "split", true));
    }

    /// Older files say add_prefix_space instead of prepend_scheme.
    public static MetaspacePrependScheme PrependSchemeOf(JsonElement json) =>
        json.TryGetProperty("prepend_scheme", out var scheme)
            ? scheme.GetString() switch
            {
                "always" => MetaspacePrependScheme.Always,
                "first" => MetaspacePrependScheme.First,
                "never" => MetaspacePrependScheme.Never,
                var other => throw new NotSupportedException($"tokenizer.json: Metaspace prepend_scheme '{other}' is not supported"),
            }
            : PreTokenizers.Bool(json, "add_prefix_space", true) ? MetaspacePrependScheme.Always : MetaspacePrependScheme.Never;

    public void PreTokenize(Piece piece, List<Piece> output)
    {
        var text = piece.Text.Replace(' ', replacement);
        var prepend = scheme == MetaspacePrependScheme.Always || (scheme == MetaspacePrependScheme.First && piece.AtStart);
        if (prepend && !text.StartsWith(replacement)) text = replacement + text;
        if (!split)
        {
            output.Add(piece with { Text = text });
            return;
        }
        var delimiters = new List<(int, int)>();
        for (var i = 0; i < text.Length; i++)
            if (text[i] == replacement) delimiters.Add((i, 1));
        foreach (var (start, end) in SplitSpans.Apply(text, delimiters, SplitBehavior.MergedWithNext, invert: false))
            output.Add(new Piece(text[start..end], piece.AtStart && start == 0));
    }
}

internal enum MetaspacePrependScheme { Always, First, Never }
