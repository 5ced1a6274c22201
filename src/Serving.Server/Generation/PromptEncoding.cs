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

    public static IReadOnlyList<int> Encode(this IPromptProcessor prompts, string text, bool addSpecialTokens, string param) =>
        Mapped(() => prompts.Encode(text, addSpecialTokens), param);

    /// The text of a JSON string, refused from its length alone when it cannot fit: a text without escapes has
    /// exactly as many characters as its UTF-8 counts, so a huge prompt is never decoded.
    public static string Text(this IPromptProcessor prompts, JsonElement element, string param)
    {
        var raw = JsonMarshal.GetRawUtf8Value(element);
        if (!raw.Contains((byte)'\\'))
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
            throw ApiException.BadRequest(tooLong.Message, param);
        }
    }
}
