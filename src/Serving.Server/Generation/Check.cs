using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using Serving.Server.Errors;

namespace Serving.Server.Generation;

/// One-line request checks: each failure is a 400 that names the offending field.
internal static class Check
{
    public static void That(bool condition, string param, string message)
    {
        if (!condition) throw ApiException.BadRequest(message, param);
    }

    public static void InRange(float? value, float min, float max, string param)
    {
        if (value is { } v) That(float.IsFinite(v) && v >= min && v <= max, param, $"{param} must be in [{min}, {max}] (got {v}).");
    }

    public static void InRange(int? value, int min, int max, string param)
    {
        if (value is { } v) That(v >= min && v <= max, param, $"{param} must be in [{min}, {max}] (got {v}).");
    }

    public static void TokenIds(IReadOnlyList<int> ids, int vocabSize, string param)
    {
        foreach (var id in ids)
            That(id >= 0 && id < vocabSize, param, $"Token id {id} is outside the vocabulary [0, {vocabSize}).");
    }

    /// The text of a JSON string. Such strings are decoded lazily, so invalid UTF-8 or an escaped lone
    /// surrogate surfaces here, and is the client's error.
    public static string Text(JsonElement element, string param)
    {
        try
        {
            return element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw ApiException.BadRequest($"{param} is not valid Unicode text.", param);
        }
    }

    /// Checks that every key and string inside a JSON value is valid Unicode text (no invalid UTF-8, no
    /// escaped lone surrogate), so that later reads of it cannot fail. The 400 names the offending path.
    public static void ValidText(JsonElement element, string param)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                That(IsValidString(element), param, $"{param} is not valid Unicode text.");
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray()) ValidText(item, $"{param}[{index++}]");
                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    ValidText(property.Value, $"{param}.{PropertyName(property, param)}");
                break;
        }
    }

    /// Unescaped strings are checked in place; escaped ones are decoded, which fails on a lone surrogate.
    static bool IsValidString(JsonElement element)
    {
        var raw = JsonMarshal.GetRawUtf8Value(element); // the quoted JSON text, escapes as written
        if (!raw.Contains((byte)'\\')) return Utf8.IsValid(raw);
        try
        {
            element.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    static string PropertyName(JsonProperty property, string param)
    {
        try
        {
            var name = property.Name;
            That(Utf8.IsValid(JsonMarshal.GetRawUtf8PropertyName(property)), param, $"{param} has a key that is not valid Unicode text.");
            return name;
        }
        catch (InvalidOperationException)
        {
            throw ApiException.BadRequest($"{param} has a key that is not valid Unicode text.", param);
        }
    }
}
