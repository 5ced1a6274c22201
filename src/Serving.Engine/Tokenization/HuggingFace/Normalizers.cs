using System.Text;
using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// tokenizers' normalizers: the text transformations applied before pre-tokenization.
internal interface INormalizer
{
    string Normalize(string text);
}

internal static class Normalizers
{
    /// The "normalizer" object of tokenizer.json; null when the file has none.
    public static INormalizer? FromJson(JsonElement json) => json.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : Create(json);

    static INormalizer Create(JsonElement json)
    {
        var type = json.GetProperty("type").GetString();
        return type switch
        {
            "Sequence" => new SequenceNormalizer(json.GetProperty("normalizers").EnumerateArray().Select(Create).ToArray()),
            "NFC" => new UnicodeNormalizer(NormalizationForm.FormC),
            "NFD" => new UnicodeNormalizer(NormalizationForm.FormD),
            "NFKC" => new UnicodeNormalizer(NormalizationForm.FormKC),
            "NFKD" => new UnicodeNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            "Prepend" => new PrependNormalizer(json.GetProperty("prepend").GetString()!),
            "Replace" => new ReplaceNormalizer(TextPattern.FromJson(json.GetProperty("pattern")), json.GetProperty("content").GetString()!),
            "Strip" => new StripNormalizer(json.GetProperty("strip_left").GetBoolean(), json.GetProperty("strip_right").GetBoolean()),
            _ => throw new NotSupportedException($"tokenizer.json: normalizer type '{type}' is not supported"),
        };
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<INormalizer> steps) : INormalizer
{
    public string Normalize(string text) => steps.Aggregate(text, (current, step) => step.Normalize(current));
}

/// NFC and friends need the ICU data; a process in globalization-invariant mode cannot normalize, so such a
/// tokenizer is refused at load rather than silently tokenizing differently from the reference.
internal sealed class UnicodeNormalizer : INormalizer
{
    readonly NormalizationForm _form;

    public UnicodeNormalizer(NormalizationForm form)
    {
        if ("e\u0301".Normalize(NormalizationForm.FormC) != "\u00e9")
            throw new NotSupportedException(
                $"tokenizer.json: normalizer {form} needs ICU, but this process runs with InvariantGlobalization; " +
                "set <InvariantGlobalization>false</InvariantGlobalization> and install libicu");
        _form = form;
    }

    public string Normalize(string text) => text.Normalize(_form);
}

internal sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => text.ToLowerInvariant();
}

/// Llama-2 style files prepend "▁" to every non-empty piece of text between added tokens.
internal sealed class PrependNormalizer(string prefix) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class ReplaceNormalizer(TextPattern pattern, string content) : INormalizer
{
    public string Normalize(string text) => pattern.ReplaceAll(text, content);
}

internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text) => (left, right) switch
    {
        (true, true) => text.Trim(),
        (true, false) => text.TrimStart(),
        (false, true) => text.TrimEnd(),
        _ => text,
    };
}
