using System.Text.Json;
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
}
