using Serving.Server.Generation;
using System.Text.Json;
using Serving.Engine;

namespace Serving.Server.OpenAI;

/// One prompt of a completions request: its token ids and, when it came as text and was kept whole, that text (for
/// echo; a truncated prompt echoes its tokens' text).
internal sealed record PromptInput(IReadOnlyList<int> TokenIds, string? Text);

/// Reads "prompt" in its four OpenAI forms: a string, a list of strings, a list of token ids, or a list of
/// token-id lists. Every prompt must be non-empty and inside the vocabulary.
internal static class CompletionPrompts
{
    const string Param = "prompt";
    const string Shape = "prompt must be a string, a list of strings, a list of token ids or a list of token-id lists.";

    /// The number of prompts the field lists (1 for a string or a single token-id list), counted without
    /// reading them, so that a request over the caps is refused before any tokenizing.
    public static int Count(JsonElement? prompt)
    {
        Check.That(prompt is { ValueKind: not JsonValueKind.Null }, Param, "prompt is required.");
        var element = prompt!.Value;
        return element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0
            && element[0].ValueKind is JsonValueKind.String or JsonValueKind.Array
            ? element.GetArrayLength() : 1;
    }

    /// keepLast (truncate_prompt_tokens): each prompt keeps only its last keepLast tokens.
    public static IReadOnlyList<PromptInput> Resolve(JsonElement? prompt, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast = null)
    {
        Check.That(prompt is { ValueKind: not JsonValueKind.Null }, Param, "prompt is required.");
        var element = prompt!.Value;
        var inputs = element.ValueKind switch
        {
            JsonValueKind.String => [FromText(element, prompts, addSpecialTokens, keepLast)],
            JsonValueKind.Array => FromArray(element, prompts, addSpecialTokens, keepLast),
            _ => throw Errors.ApiException.BadRequest(Shape, Param),
        };
        foreach (var input in inputs)
        {
            Check.That(input.TokenIds.Count > 0, Param, "prompt must not be empty (it gives no tokens).");
            Check.TokenIds(input.TokenIds, prompts.VocabSize, Param);
        }
        return inputs;
    }

    static List<PromptInput> FromArray(JsonElement array, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast)
    {
        Check.That(array.GetArrayLength() > 0, Param, "prompt must not be empty.");
        var first = array[0].ValueKind;
        if (first == JsonValueKind.Number) return [new PromptInput(PromptEncoding.Tail(TokenIds(array), keepLast), null)];
        var inputs = new List<PromptInput>();
        foreach (var item in array.EnumerateArray())
        {
            Check.That(item.ValueKind == first, Param, Shape);
            inputs.Add(item.ValueKind switch
            {
                JsonValueKind.String => FromText(item, prompts, addSpecialTokens, keepLast),
                JsonValueKind.Array => new PromptInput(PromptEncoding.Tail(TokenIds(item), keepLast), null),
                _ => throw Errors.ApiException.BadRequest(Shape, Param),
            });
        }
        return inputs;
    }

    /// An empty text still gets what the tokenizer adds around a text (BOS), as Hugging Face and vLLM do.
    static PromptInput FromText(JsonElement element, IPromptProcessor prompts, bool addSpecialTokens, int? keepLast)
    {
        var text = prompts.Text(element, Param, guardLength: keepLast is null);
        var ids = prompts.Encode(text, addSpecialTokens, Param, keepLast);
        return new PromptInput(ids, keepLast is { } k && ids.Count == k ? null : text);
    }

    static int[] TokenIds(JsonElement array)
    {
        var ids = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            Check.That(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out ids[i]), Param,
                "Token ids must be integers.");
            i++;
        }
        return ids;
    }
}
