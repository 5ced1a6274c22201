using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Serving.Engine;
using Serving.Server.Errors;

namespace Serving.Server.Generation;

/// Tokenizing a request's text, with the engine's refusal of a text that cannot fit the context reported under
/// the field the text came from ("messages", "text", ...).
internal static class PromptEncoding
{
    /// Whether tokenizing adds the tokenizer's special tokens (BOS), on every API: a text prompt does unless the
    /// request says add_special_tokens false; a rendered chat does not unless it says true (the template writes
    /// them), as vLLM does.
    public static bool AddSpecialTokens(bool? requested, bool chat) => requested ?? !chat;

    /// keepLast (from KeepLast): only the text's last tokens are kept, so a text of any length is taken.
    public static IReadOnlyList<int> Encode(this IPromptProcessor prompts, string text, bool addSpecialTokens, string param,
        int? keepLast = null) =>
        keepLast is null ? Mapped(() => prompts.Encode(text, addSpecialTokens), param) : Tail(prompts.EncodeAnyLength(text, addSpecialTokens), keepLast);

    /// vLLM's truncate_prompt_tokens as the number of a prompt's last tokens to keep: null keeps them all, -1 the last
    /// max_model_len, k (1..max_model_len) the last k.
    public static int? KeepLast(int? truncatePromptTokens, int maxModelLen)
    {
        if (truncatePromptTokens is not { } k) return null;
        Check.That(k == -1 || k >= 1 && k <= maxModelLen, "truncate_prompt_tokens",
            $"truncate_prompt_tokens must be -1 (the model's {maxModelLen} tokens) or 1..{maxModelLen} (got {k}).");
        return k == -1 ? maxModelLen : k;
    }

    /// The last keepLast token ids (all of them when keepLast is null).
    public static IReadOnlyList<int> Tail(IReadOnlyList<int> ids, int? keepLast) =>
        keepLast is { } k && ids.Count > k ? ids.Skip(ids.Count - k).ToArray() : ids;

    /// The text of a JSON string, refused from its length alone when it cannot fit (unless the prompt is truncated,
    /// guardLength false): a text without escapes has exactly as many characters as its UTF-8 counts, so a huge
    /// prompt is never decoded.
    public static string Text(this IPromptProcessor prompts, JsonElement element, string param, bool guardLength = true)
    {
        var raw = JsonMarshal.GetRawUtf8Value(element);
        if (guardLength && !raw.Contains((byte)'\\'))
        {
            var length = Encoding.UTF8.GetCharCount(raw);
            Mapped(() => prompts.CheckTextLength(length), param);
        }
        return Check.Text(element, param);
    }

    static void Mapped(Action check, string param) => Mapped(() => { check(); return 0; }, param);

    static T Mapped<T>(Func<T> encode, string param)
    {
        try
        {
            return encode();
        }
        catch (InvalidRequestException tooLong)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, ErrorTypes.InvalidRequest, tooLong.Message, param)
            {
                ExceedsContext = tooLong.ExceedsContext,
            };
        }
    }
}
