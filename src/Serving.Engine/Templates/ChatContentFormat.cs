using System.Text.Json.Nodes;
using Serving.Engine.Templates.Jinja;

namespace Serving.Engine.Templates;

/// How a chat template reads a message's content (vLLM's --chat-template-content-format): as one string (text parts
/// joined by newlines), or as OpenAI's list of parts, [{"type": "text", "text": ...}], which the templates of
/// multimodal releases loop over. A template given a string where it loops over parts iterates the characters and
/// writes none of the text, so the format must be the template's.
public enum ChatContentFormat
{
    String,
    OpenAI,
}

/// The flag's values, what the template's syntax says (auto), and messages put into a format.
public static class ChatContentFormats
{
    /// The flag's values: auto (the template's own, Detect), string, openai.
    public static readonly string[] FlagValues = ["auto", "string", "openai"];

    /// A flag value as a format; null for auto. ArgumentException for anything else.
    public static ChatContentFormat? Parse(string value) => value.ToLowerInvariant() switch
    {
        "auto" => null,
        "string" => ChatContentFormat.String,
        "openai" => ChatContentFormat.OpenAI,
        _ => throw new ArgumentException($"chat-template-content-format must be one of {string.Join(", ", FlagValues)} (got '{value}')"),
    };

    /// OpenAI when the template loops over a message's content, as vLLM detects it: a for loop over `m.content` or
    /// `m['content']` where m comes from the messages (a loop over `messages`, or a name set from it such as
    /// `loop_messages = messages[1:]`), or over a name `content` (a macro's parameter, say, as vLLM's fallback takes
    /// it); and over a name set from a message's content; String otherwise.
    internal static ChatContentFormat Detect(IReadOnlyList<Node> template)
    {
        var messageLists = new HashSet<string> { "messages" };
        var messages = new HashSet<string>();
        var contents = new HashSet<string> { "content" };
        var statements = Statements(template).ToList();
        // names bind each other in any order in the source: repeat until no name is added
        for (var changed = true; changed;)
        {
            changed = false;
            foreach (var statement in statements)
                switch (statement)
                {
                    case SetNode { Attribute: null } set when Refers(set.Value, messageLists):
                        changed |= AddAll(messageLists, set.Targets);
                        break;
                    case SetNode { Attribute: null } set when IsContentOf(set.Value, messages):
                        changed |= AddAll(contents, set.Targets);
                        break;
                    case ForNode loop when Refers(loop.Iterable, messageLists):
                        changed |= AddAll(messages, loop.Targets);
                        break;
                }
        }
        return statements.OfType<ForNode>().Any(loop => IsContentOf(loop.Iterable, messages) || Refers(loop.Iterable, contents))
            ? ChatContentFormat.OpenAI
            : ChatContentFormat.String;
    }

    /// The messages with each content in the format: for String a list of parts becomes its texts joined by newlines
    /// (as vLLM joins them) and no content "", for OpenAI a string becomes one text part and no content an empty list.
    /// The messages themselves when every content is in the format already (the common case), else a converted copy.
    internal static JsonArray Apply(JsonArray messages, ChatContentFormat format)
    {
        if (messages.All(message => message is not JsonObject fields || InFormat(fields["content"], format))) return messages;
        var result = new JsonArray();
        foreach (var message in messages)
        {
            if (message is not JsonObject fields)
            {
                result.Add(message?.DeepClone());
                continue;
            }
            var content = fields["content"];
            JsonNode? converted = (format, content) switch
            {
                (ChatContentFormat.String, JsonArray parts) => string.Join("\n", Texts(parts)),
                (ChatContentFormat.String, null) => "",
                (ChatContentFormat.OpenAI, JsonValue value) when value.TryGetValue(out string? text) => new JsonArray(TextPart(text)),
                (ChatContentFormat.OpenAI, null) => new JsonArray(),
                _ => content?.DeepClone(),
            };
            var copy = (JsonObject)fields.DeepClone();
            copy["content"] = converted;
            result.Add(copy);
        }
        return result;
    }

    static bool InFormat(JsonNode? content, ChatContentFormat format) => format == ChatContentFormat.String
        ? content is JsonValue value && value.TryGetValue(out string? _)
        : content is JsonArray;

    static JsonObject TextPart(string text) => new() { ["type"] = "text", ["text"] = text };

    // the texts of text parts; a bare string is a text too (as vLLM takes it)
    static IEnumerable<string> Texts(JsonArray parts) =>
        parts.Select(part => part is JsonObject fields ? fields["text"] : part).OfType<JsonValue>()
            .Select(text => text.TryGetValue(out string? s) ? s : null).OfType<string>();

    static bool AddAll(HashSet<string> names, IEnumerable<string> added) => added.Aggregate(false, (any, name) => names.Add(name) | any);

    // whether the expression is one of the names, or an item, slice or filter of it (messages[1:], messages|reverse)
    static bool Refers(Expr expression, HashSet<string> names) => expression switch
    {
        NameExpr name => names.Contains(name.Name),
        SliceExpr slice => Refers(slice.Target, names),
        FilterExpr filter => Refers(filter.Value, names),
        _ => false,
    };

    // m.content or m['content'] (or a slice or filter of it) of one of the message names
    static bool IsContentOf(Expr expression, HashSet<string> messages) => expression switch
    {
        AttributeExpr { Name: "content" } attribute => Refers(attribute.Target, messages),
        ItemExpr { Index: LiteralExpr { Value: StringValue key } } item => key.Value == "content" && Refers(item.Target, messages),
        SliceExpr slice => IsContentOf(slice.Target, messages),
        FilterExpr filter => IsContentOf(filter.Value, messages),
        _ => false,
    };

    // every statement of the template, nested bodies included
    static IEnumerable<Node> Statements(IReadOnlyList<Node> nodes)
    {
        foreach (var node in nodes)
        {
            yield return node;
            var bodies = node switch
            {
                IfNode branches => [.. branches.Branches.Select(b => b.Body), branches.Else],
                ForNode loop => [loop.Body, loop.Else],
                SetBlockNode block => [block.Body],
                MacroNode macro => [macro.Body],
                CallBlockNode call => [call.Caller.Body],
                _ => (IReadOnlyList<IReadOnlyList<Node>>)[],
            };
            foreach (var body in bodies)
                foreach (var inner in Statements(body))
                    yield return inner;
        }
    }
}
