using System.Text.Json;
using Serving.Engine.Model.Lora;

namespace Serving.Server.Options;

/// The entries of --lora-modules (one setting, the flag's values joined by spaces): each `name=path`, or as vLLM also
/// takes them a JSON object `{"name": "sql", "path": "/adapters/sql", "base_model_name": "llama"}`, which may hold
/// spaces.
static class LoraModuleEntries
{
    public static IEnumerable<string> Split(string? setting)
    {
        var text = setting ?? "";
        for (var i = 0; i < text.Length;)
        {
            if (char.IsWhiteSpace(text[i])) { i++; continue; }
            var end = text[i] == '{' ? ObjectEnd(text, i) : i;
            while (end < text.Length && !char.IsWhiteSpace(text[end])) end++;
            yield return text[i..end];
            i = end;
        }
    }

    public static LoraAdapterSource Read(string entry)
    {
        if (!entry.StartsWith('{'))
            return entry.Split('=', 2) is [{ Length: > 0 } name, { Length: > 0 } path]
                ? new LoraAdapterSource(name, path)
                : throw new ArgumentException($"lora-modules entries are name=path or a JSON object (got '{entry}')");
        try
        {
            var module = JsonSerializer.Deserialize<JsonElement>(entry);
            return new LoraAdapterSource(Text(module, "name", entry)!, Text(module, "path", entry)!, Text(module, "base_model_name", entry, required: false));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"lora-modules: '{entry}' is not valid JSON ({e.Message})");
        }
    }

    static string? Text(JsonElement module, string field, string entry, bool required = true)
    {
        if (module.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"lora-modules: '{entry}' must be an object with name and path");
        if (module.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text)
            return text;
        if (module.TryGetProperty(field, out value) && value.ValueKind != JsonValueKind.Null)
            throw new ArgumentException($"lora-modules: {field} in '{entry}' must be a non-empty string");
        return required ? throw new ArgumentException($"lora-modules: '{entry}' has no {field}") : null;
    }

    /// Just past the '}' that closes the object opened at start (strings and their escapes skipped); the text's end
    /// when it never closes, for the JSON reader to refuse.
    static int ObjectEnd(string text, int start)
    {
        var (depth, inString) = (0, false);
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\') i++;
                else if (c == '"') inString = false;
            }
            else if (c == '"') inString = true;
            else if (c == '{') depth++;
            else if (c == '}' && --depth == 0) return i + 1;
        }
        return text.Length;
    }
}
