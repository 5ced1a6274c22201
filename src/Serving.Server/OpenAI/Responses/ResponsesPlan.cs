using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine;
using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.OpenAI.Chat;

namespace Serving.Server.OpenAI.Responses;

/// A checked /v1/responses request. The conversation (a stored response's, then this input) becomes the chat API's
/// messages, its tools, tool_choice and text format the chat API's, so that one path renders, constrains, samples
/// and reads answers (ChatPlan); a refusal there names the Responses field it came from.
internal sealed record ResponsesPlan(ChatPlan Chat, ResponsesRequest Request, string ModelName, IReadOnlyList<ResponseItem> Input,
    IReadOnlyList<ResponseItem> Conversation, bool Store, bool OutputLogprobs)
{
    const string LogprobsInclude = "message.output_text.logprobs";

    /// What "include" may name: the log-probabilities this server writes, and OpenAI's other values, which concern
    /// tools and inputs it does not have and so add nothing.
    static readonly HashSet<string> Includes = [LogprobsInclude, "reasoning.encrypted_content", "file_search_call.results",
        "web_search_call.results", "web_search_call.action.sources", "message.input_image.image_url",
        "computer_call_output.output.image_url", "code_interpreter_call.outputs"];

    public string Id => Chat.Id;

    /// previous: the stored response this one continues (previous_response_id), already found. clientId: the response's
    /// id as the client names it (ClientRequestId.Of), checked not to name a stored one; null: a new id.
    public static ResponsesPlan Create(ResponsesRequest request, StoredResponse? previous, ServingContext serving, string? clientId = null)
    {
        RefuseUnsupported(request);
        var input = InputItems.Read(request.Input);
        IReadOnlyList<ResponseItem> conversation = [.. previous?.Conversation ?? [], .. input];
        var logprobs = request.TopLogprobs is > 0 || request.Include?.Contains(LogprobsInclude) == true;
        var chat = new ChatRequest
        {
            Model = request.Model,
            MaxCompletionTokens = request.MaxOutputTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            MinP = request.MinP,
            Seed = request.Seed,
            Stop = request.Stop,
            StopTokenIds = request.StopTokenIds,
            PresencePenalty = request.PresencePenalty,
            FrequencyPenalty = request.FrequencyPenalty,
            RepetitionPenalty = request.RepetitionPenalty,
            MinTokens = request.MinTokens,
            IgnoreEos = request.IgnoreEos,
            User = request.User,
            Logprobs = logprobs,
            TopLogprobs = logprobs ? request.TopLogprobs ?? 0 : null,
            ResponseFormat = ResponseFormat(request.Text),
            StructuredOutputs = request.StructuredOutputs,
            Tools = Tools(request.Tools),
            ToolChoice = ToolChoice(request.ToolChoice),
            ParallelToolCalls = request.ParallelToolCalls,
            ChatTemplateKwargs = request.ChatTemplateKwargs,
            ReasoningEffort = ReasoningEffort(request.Reasoning),
            Priority = request.Priority,
            CacheSalt = request.CacheSalt,
        };
        var messages = ChatMessagesOf.Conversation(request.Instructions, conversation);
        var ids = clientId is null ? RequestIds.Same($"resp_{Guid.NewGuid():N}") : ClientRequestId.WithEngineSuffix(clientId);
        try
        {
            var plan = request.Truncation == "auto" ? Truncated(chat, messages, serving, ids) : ChatPlan.Create(chat with { Messages = Element(messages) }, serving, ids);
            return new ResponsesPlan(plan, request, plan.Model.Name, input, conversation, request.Store ?? true, logprobs);
        }
        catch (ApiException error)
        {
            throw FieldsRenamed(error);
        }
    }

    /// truncation "auto" (OpenAI's rule): the conversation keeps its instructions and drops its oldest messages, the
    /// fewest that make it fit the context (found by bisection, so a long conversation is rendered a few times only).
    /// The last message always stays: when even it alone does not fit, the refusal is that of the shortest try.
    static ChatPlan Truncated(ChatRequest chat, JsonArray messages, ServingContext serving, RequestIds ids)
    {
        ChatPlan? Try(int drop)
        {
            try
            {
                return ChatPlan.Create(chat with { Messages = Element(WithoutOldest(messages, drop)) }, serving, ids);
            }
            catch (Exception error) when (error is InvalidRequestException { ExceedsContext: true } or ApiException { ExceedsContext: true })
            {
                return null;
            }
        }
        if (Try(0) is { } whole) return whole;
        var keep = Instructions(messages);
        var (fails, fits) = (0, Math.Max(0, messages.Count - keep - 1));   // dropping `fails` does not fit; `fits`: the most that may go
        var plan = Try(fits) ?? ChatPlan.Create(chat with { Messages = Element(WithoutOldest(messages, fits)) }, serving, ids);   // throws the refusal
        while (fits - fails > 1)
        {
            var middle = (fails + fits) / 2;
            if (Try(middle) is { } shorter) (fits, plan) = (middle, shorter);
            else fails = middle;
        }
        return plan;
    }

    /// 1 when the conversation opens with the instructions' system message (truncation keeps it), else 0.
    static int Instructions(JsonArray messages) => messages.Count > 0 && messages[0]?["role"]?.GetValue<string>() == "system" ? 1 : 0;

    /// The conversation without its `drop` oldest messages after the instructions, and starting at a user message (so
    /// no tool result is left without its call and templates that want turns to alternate take it); at least the last
    /// message stays. Dropping more always keeps a shorter tail, which the bisection needs.
    static JsonArray WithoutOldest(JsonArray messages, int drop)
    {
        if (drop == 0) return (JsonArray)messages.DeepClone();
        var keep = Instructions(messages);
        var rest = messages.Skip(keep + drop).SkipWhile(m => m?["role"]?.GetValue<string>() != "user").ToList();
        if (rest.Count == 0 && messages.Count > keep) rest = [messages[^1]];
        return new JsonArray([.. messages.Take(keep).Concat(rest).Select(m => m?.DeepClone())]);
    }

    /// The response object with this request's settings echoed back.
    public ResponseObject Response(string status, IReadOnlyList<ResponseItem> output, ResponseUsage? usage) =>
        new(Id, Chat.Created, status, ModelName, output, usage)
        {
            Instructions = Request.Instructions,
            MaxOutputTokens = Request.MaxOutputTokens,
            ParallelToolCalls = Request.ParallelToolCalls ?? true,
            PreviousResponseId = Request.PreviousResponseId,
            Reasoning = Request.Reasoning ?? Element(new JsonObject { ["effort"] = null, ["summary"] = null }),
            Store = Store,
            Temperature = Chat.Generation.Sampling.Temperature,
            TopP = Chat.Generation.Sampling.TopP,
            TopLogprobs = Request.TopLogprobs ?? 0,
            Text = Request.Text ?? Element(new JsonObject { ["format"] = new JsonObject { ["type"] = "text" } }),
            ToolChoice = Request.ToolChoice ?? Element(JsonValue.Create("auto")),
            Tools = Request.Tools ?? Element(new JsonArray()),
            User = Request.User,
            Metadata = Request.Metadata ?? [],
            Truncation = Request.Truncation ?? "disabled",
            Background = Request.Background == true,
        };

    static void RefuseUnsupported(ResponsesRequest request)
    {
        if (request.Background == true)
        {
            Check.That(request.Store != false, "store", "A background response is stored: background requires store.");
        }
        Check.That(IsAbsent(request.Conversation), "conversation",
            "Conversations are not supported; continue a response with previous_response_id instead.");
        Check.That(IsAbsent(request.Prompt), "prompt", "Stored prompts are not supported; send the instructions and input.");
        Check.That(request.Truncation is null or "disabled" or "auto", "truncation", "truncation must be auto or disabled.");
        Check.InRange(request.TopLogprobs, 0, 20, "top_logprobs");
        foreach (var include in request.Include ?? [])
            Check.That(Includes.Contains(include), "include", $"include value '{include}' is not supported.");
        if (request.Metadata is { } metadata)
            Check.That(metadata.Count <= 16 && metadata.All(m => m.Key.Length <= 64 && m.Value is { Length: <= 512 }), "metadata",
                "metadata holds at most 16 pairs, keys of at most 64 characters and string values of at most 512.");
        // echoed back (reasoning.effort also reaches the chat template), still OpenAI's shapes
        if (!IsAbsent(request.Reasoning))
        {
            var reasoning = request.Reasoning!.Value;
            Check.That(reasoning.ValueKind == JsonValueKind.Object, "reasoning", "reasoning must be an object ({\"effort\", \"summary\"}).");
            OneOf(reasoning, "effort", "reasoning.effort", ChatPrompt.ReasoningEfforts);
            OneOf(reasoning, "summary", "reasoning.summary", "auto", "concise", "detailed");
        }
        if (!IsAbsent(request.Text) && request.Text!.Value.ValueKind == JsonValueKind.Object)
            OneOf(request.Text.Value, "verbosity", "text.verbosity", "low", "medium", "high");
    }

    /// An optional string field of an object, null or one of the values allowed.
    static void OneOf(JsonElement parent, string field, string param, params string[] allowed)
    {
        if (!parent.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return;
        Check.That(value.ValueKind == JsonValueKind.String && allowed.Contains(value.GetString()), param,
            $"{param} must be one of {string.Join(", ", allowed)}.");
    }

    /// text.format as the chat API's response_format.
    static JsonElement? ResponseFormat(JsonElement? text)
    {
        if (IsAbsent(text)) return null;
        Check.That(text!.Value.ValueKind == JsonValueKind.Object, "text", "text must be an object.");
        if (!text.Value.TryGetProperty("format", out var format) || format.ValueKind == JsonValueKind.Null) return null;
        Check.That(format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var type)
            && type.ValueKind == JsonValueKind.String, "text.format.type", "text.format must be an object with a type.");
        var kind = Check.Text(format.GetProperty("type"), "text.format.type");
        return kind switch
        {
            "text" => null,
            "json_object" => Element(new JsonObject { ["type"] = "json_object" }),
            "json_schema" => Element(new JsonObject { ["type"] = "json_schema", ["json_schema"] = Without(format, "type") }),
            _ => throw ApiException.BadRequest("text.format.type must be one of text, json_object, json_schema.", "text.format.type"),
        };
    }

    /// reasoning.effort, for the chat template (checked with the other echoed fields).
    static string? ReasoningEffort(JsonElement? reasoning) =>
        !IsAbsent(reasoning) && reasoning!.Value.ValueKind == JsonValueKind.Object && reasoning.Value.TryGetProperty("effort", out var effort)
            && effort.ValueKind == JsonValueKind.String ? effort.GetString() : null;

    /// Responses' flat function tools ({type, name, parameters, ...}) as the chat API's ({type, function: {...}}).
    static JsonElement? Tools(JsonElement? tools)
    {
        if (IsAbsent(tools)) return null;
        Check.That(tools!.Value.ValueKind == JsonValueKind.Array, "tools", "tools must be a list of tool objects.");
        var chatTools = new JsonArray();
        var index = 0;
        foreach (var tool in tools.Value.EnumerateArray())
        {
            var at = $"tools[{index++}]";
            Check.That(tool.ValueKind == JsonValueKind.Object, at, $"{at} must be an object.");
            var type = tool.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? Check.Text(t, $"{at}.type") : null;
            Check.That(type == "function", $"{at}.type", $"Only function tools are supported (got type '{type}').");
            chatTools.Add(new JsonObject { ["type"] = "function", ["function"] = Without(tool, "type") });
        }
        return Element(chatTools);
    }

    /// {"type": "function", "name"} as the chat API's {"type": "function", "function": {"name"}}; strings as they are.
    static JsonElement? ToolChoice(JsonElement? choice)
    {
        if (IsAbsent(choice) || choice!.Value.ValueKind == JsonValueKind.String) return choice;
        Check.That(choice.Value.ValueKind == JsonValueKind.Object && choice.Value.TryGetProperty("type", out var type)
            && type.ValueKind == JsonValueKind.String && type.GetString() == "function", "tool_choice.type",
            "tool_choice must be none, auto, required or {\"type\": \"function\", \"name\": ...}.");
        Check.That(choice.Value.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String,
            "tool_choice.name", "tool_choice.name must be a string.");
        return Element(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = Check.Text(name, "tool_choice.name") } });
    }

    /// A refusal of the chat fields the request became, in the Responses fields' names.
    static ApiException FieldsRenamed(ApiException error)
    {
        if (error.Param is not { } param) return error;
        var renamed = param switch
        {
            _ when param.StartsWith("messages", StringComparison.Ordinal) => "input",
            "max_completion_tokens" or "max_tokens" => "max_output_tokens",
            "response_format" or "response_format.json_schema" => "text.format",
            _ when param.StartsWith("response_format.json_schema.", StringComparison.Ordinal) => "text.format." + param["response_format.json_schema.".Length..],
            _ when param.StartsWith("tools[", StringComparison.Ordinal) => param.Replace(".function.", ".", StringComparison.Ordinal),
            "tool_choice.function.name" => "tool_choice.name",
            _ => param,
        };
        return renamed == param ? error
            : new ApiException(error.Status, error.Type, error.Message.Replace(param, renamed, StringComparison.Ordinal), renamed, error.Code);
    }

    /// A copy of an object without one of its properties (Responses spells flat what the chat API nests).
    static JsonObject Without(JsonElement element, string property)
    {
        var copy = JsonNode.Parse(element.GetRawText())!.AsObject();
        copy.Remove(property);
        return copy;
    }

    static bool IsAbsent(JsonElement? element) => element is null or { ValueKind: JsonValueKind.Null };

    static JsonElement Element(JsonNode? node) => JsonDocument.Parse(node?.ToJsonString() ?? "null").RootElement.Clone();
}
