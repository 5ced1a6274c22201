using Serving.Server.Generation;
using System.Text.Json;
using Serving.Engine;

namespace Serving.Server.OpenAI;

/// One prompt of a completions request: its token ids and, when it came as text and was kept whole, that text (for
/// echo; a truncated prompt echoes its tokens' text).
internal sealed record PromptInput(IReadOnlyList<int> TokenIds, string? Text);

/// Reads completions' "prompt" (and embeddings' "input": param names the field) in its four OpenAI forms: a string, a
/// list of strings, a list of token ids, or a list of token-id lists. Every prompt must be non-empty and inside the
/// vocabulary.
internal static class CompletionPrompts
{
    static string Shape(string param) => $"{param} must be a string, a list of strings, a list of token ids or a list of token-id lists.";

    /// The number of prompts the field lists (1 for a string or a single token-id list), counted without
    /// reading them, so that a request over the caps is refused before any tokenizing.
    public static int Count(JsonElement? prompt, string param = "prompt")
    {
        Check.That(prompt is { ValueKind: not JsonValueKind.Null }, param, $"{param} is required.");
        var element = prompt!.Value;
        return element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0
            && element[0].ValueKind is JsonValueKind.String or JsonValueKind.Array
            ? element.GetArrayLength() : 1;
    }

    /// keepLast (truncate_prompt_tokens): each prompt keeps only its last keepLast tokens.
    public static IReadOnlyList<PromptInput> Resolve(JsonElement? prompt, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast = null,
        string param = "prompt")
    {
        Check.That(prompt is { ValueKind: not JsonValueKind.Null }, param, $"{param} is required.");
        var element = prompt!.Value;
        var inputs = element.ValueKind switch
        {
            JsonValueKind.String => [FromText(element, prompts, addSpecialTokens, keepLast, param)],
            JsonValueKind.Array => FromArray(element, prompts, addSpecialTokens, keepLast, param),
            _ => throw Errors.ApiException.BadRequest(Shape(param), param),
        };
        foreach (var input in inputs)
        {
            Check.That(input.TokenIds.Count > 0, param, $"{param} must not be empty (it gives no tokens).");
            Check.TokenIds(input.TokenIds, prompts.VocabSize, param);
        }
        return inputs;
    }

    static List<PromptInput> FromArray(JsonElement array, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast, string param)
    {
        Check.That(array.GetArrayLength() > 0, param, $"{param} must not be empty.");
        var first = array[0].ValueKind;
        if (first == JsonValueKind.Number) return [new PromptInput(PromptEncoding.Tail(TokenIds(array, param), keepLast), null)];
        var inputs = new List<PromptInput>();
        foreach (var item in array.EnumerateArray())
        {
            Check.That(item.ValueKind == first, param, Shape(param));
            inputs.Add(item.ValueKind switch
            {
                JsonValueKind.String => FromText(item, prompts, addSpecialTokens, keepLast, param),
                JsonValueKind.Array => new PromptInput(PromptEncoding.Tail(TokenIds(item, param), keepLast), null),
                _ => throw Errors.ApiException.BadRequest(Shape(param), param),
            });
        }
        return inputs;
    }

    /// An empty text still gets what the tokenizer adds around a text (BOS), as Hugging Face and vLLM do.
    static PromptInput FromText(JsonElement element, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast, string param)
    {
        var text = prompts.Text(element, param, guardLength: keepLast is null);
        var ids = prompts.Encode(text, addSpecialTokens, param, keepLast);
        return new PromptInput(ids, keepLast is { } k && ids.Count == k ? null : text);
    }

    static int[] TokenIds(JsonElement array, string param)
    {
        var ids = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            Check.That(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out ids[i]), param,
                "Token ids must be integers.");
            i++;
        }
        return ids;
    }
}
