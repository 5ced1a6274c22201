using System.Globalization;
using System.Text;
using Serving.Engine;

namespace Serving.Server.OpenAI;

/// The engine's log-probabilities in OpenAI's two formats. JSON has no -infinity, so values are floored
/// at -9999 (vLLM does the same).
internal static class LogprobsFormat
{
    const float Floor = -9999f;
    const string BytesPrefix = "bytes:";

    /// Completions style. textOffset is where the first token's text starts in the choice's text.
    public static CompletionLogprobs Completion(IReadOnlyList<TokenLogprob> items, int textOffset, IPromptProcessor prompts)
    {
        var tokens = new List<string>(items.Count);
        var offsets = new List<int>(items.Count);
        var tops = new List<Dictionary<string, float>>(items.Count);
        foreach (var item in items)
        {
            var text = prompts.TokenText(item.TokenId);
            tokens.Add(text);
            offsets.Add(textOffset);
            textOffset += text.Length;
            var top = new Dictionary<string, float>();
            foreach (var alt in item.Top) top.TryAdd(prompts.TokenText(alt.TokenId), Clamp(alt.Logprob));
            tops.Add(top);
        }
        return new CompletionLogprobs(tokens, [.. items.Select(i => Clamp(i.Logprob))], tops, offsets);
    }

    /// Chat style: each token with its UTF-8 bytes and its top alternatives.
    public static ChatLogprobs Chat(IReadOnlyList<TokenLogprob> items, IPromptProcessor prompts) =>
        new([.. items.Select(item =>
        {
            var text = prompts.TokenText(item.TokenId);
            return new ChatTokenLogprob(text, Clamp(item.Logprob), Bytes(text), [.. item.Top.Select(alt =>
            {
                var altText = prompts.TokenText(alt.TokenId);
                return new ChatTopLogprob(altText, Clamp(alt.Logprob), Bytes(altText));
            })]);
        })]);

    /// The value sent for a log-probability: finite, at least Floor.
    internal static float Clamp(float logprob) => float.IsNaN(logprob) ? Floor : Math.Max(logprob, Floor);

    /// The token's bytes: its UTF-8, or the raw bytes of a "bytes:\xNN\xNN" token (not valid UTF-8 alone).
    internal static IReadOnlyList<int> Bytes(string tokenText)
    {
        if (!tokenText.StartsWith(BytesPrefix, StringComparison.Ordinal))
            return [.. Encoding.UTF8.GetBytes(tokenText).Select(b => (int)b)];
        return [.. tokenText[BytesPrefix.Length..]
            .Split("\\x", StringSplitOptions.RemoveEmptyEntries)
            .Select(hex => int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture))];
    }
}
