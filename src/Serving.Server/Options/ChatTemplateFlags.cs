using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Templates;

namespace Serving.Server.Options;

/// --chat-template and --default-chat-template-kwargs read as vLLM reads them. Each throws ArgumentException with
/// a message naming its flag.
internal static class ChatTemplateFlags
{
    /// The template's source: the value itself when it holds '{', '}' or a line break (a template), else the file it
    /// names. The source must parse.
    public static string Source(string value)
    {
        var source = value.IndexOfAny(['{', '}', '\n']) >= 0 ? value
            : File.Exists(value) ? File.ReadAllText(value)
            : throw new ArgumentException($"chat-template '{value}' looks like a file path, but no such file exists");
        try
        {
            _ = new ChatTemplate(source);
        }
        catch (TemplateException error)
        {
            throw new ArgumentException($"chat-template does not parse: {error.Message}", error);
        }
        return source;
    }

    /// The variables: a JSON object.
    public static JsonObject Kwargs(string json)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject
                ?? throw new ArgumentException($"default-chat-template-kwargs must be a JSON object (got {json})");
        }
        catch (JsonException error)
        {
            throw new ArgumentException($"default-chat-template-kwargs is not JSON: {error.Message}", error);
        }
    }
}
