using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI.Tools;

// Tool calls as OpenAI writes them: whole in a message, and as deltas in stream chunks (the first delta of a
// call carries its index, id, type and name; later ones only pieces of its arguments).

internal sealed record ToolCall(string Id, FunctionCall Function)
{
    public string Type => "function";
}

internal sealed record FunctionCall(string Name, string Arguments);

internal sealed record ToolCallDelta(
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type,
    FunctionCallDelta Function);

internal sealed record FunctionCallDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Arguments);
