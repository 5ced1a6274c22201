using System.Globalization;
using System.Text;
using Serving.Engine;

namespace Serving.Server.OpenAI;

/// How a log-probability listing names tokens: by their text, or under vLLM's return_tokens_as_token_ids as
/// "token_id:{id}", which names every token even where its bytes are not text on their own.
internal sealed class LogprobTokens(IPromptProcessor prompts, bool asIds)
{
    public string Name(int tokenId) => asIds ? $"token_id:{tokenId.ToString(CultureInfo.InvariantCulture)}" : prompts.TokenText(tokenId);
}

/// The engine's log-probabilities in OpenAI's two formats. JSON has no -infinity, so values are floored
/// at -9999 (vLLM does the same).
internal static class LogprobsFormat
{
    const float Floor = -9999f;
    const string BytesPrefix = "bytes:";

    /// Completions style. textOffset is where the first token's text starts in the choice's text.
    public static CompletionLogprobs Completion(IReadOnlyList<TokenLogprob> items, int textOffset, LogprobTokens tokens) =>
        Completion([.. items.Select(i => i.TokenId)], items, textOffset, tokens);

    /// Completions style for tokens whose log-probability may be missing (the first prompt token): tokenIds name
    /// the tokens, items[i] their log-probabilities or null. Prompt tokens (with a Rank) list themselves among
    /// their alternatives, as vLLM echoes them.
    public static CompletionLogprobs Completion(IReadOnlyList<int> tokenIds, IReadOnlyList<TokenLogprob?> items, int textOffset,
        LogprobTokens names)
    {
        var tokens = new List<string>(items.Count);
        var offsets = new List<int>(items.Count);
        var tops = new List<Dictionary<string, float>?>(items.Count);
        for (var i = 0; i < tokenIds.Count; i++)
        {
            var text = names.Name(tokenIds[i]);
            tokens.Add(text);
            offsets.Add(textOffset);
            textOffset += text.Length;
            tops.Add(items[i] is { } item ? Top(item, names) : null);
        }
        return new CompletionLogprobs(tokens, [.. items.Select(i => i is null ? (float?)null : Clamp(i.Logprob))], tops, offsets);
    }

    static Dictionary<string, float> Top(TokenLogprob item, LogprobTokens names)
    {
        var top = new Dictionary<string, float>();
        foreach (var alt in item.Top) top.TryAdd(names.Name(alt.TokenId), Clamp(alt.Logprob));
        if (item.Rank is not null) top.TryAdd(names.Name(item.TokenId), Clamp(item.Logprob));
        return top;
    }

    /// One list after another, the second's offsets where the first's text ends.
    public static CompletionLogprobs Concat(CompletionLogprobs first, CompletionLogprobs second) =>
        new([.. first.Tokens, .. second.Tokens], [.. first.TokenLogprobs, .. second.TokenLogprobs],
            [.. first.TopLogprobs, .. second.TopLogprobs], [.. first.TextOffset, .. second.TextOffset]);

    /// The text length a list of tokens spans (where a following list's offsets start).
    public static int End(CompletionLogprobs logprobs) =>
        logprobs.TextOffset.Count == 0 ? 0 : logprobs.TextOffset[^1] + logprobs.Tokens[^1].Length;

    /// vLLM's prompt_logprobs: per prompt position null (the first) or {token id: {logprob, rank, decoded_token}}
    /// for the prompt's own token and its top alternatives (ranks 1..k).
    public static IReadOnlyList<Dictionary<string, PromptLogprob>?> Prompt(IReadOnlyList<TokenLogprob?> items, IPromptProcessor prompts) =>
        [.. items.Select(item =>
        {
            if (item is null) return null;
            var entries = new Dictionary<string, PromptLogprob>
            {
                [Id(item.TokenId)] = new(Clamp(item.Logprob), item.Rank, prompts.TokenText(item.TokenId)),
            };
            for (var k = 0; k < item.Top.Count; k++)
                entries.TryAdd(Id(item.Top[k].TokenId), new(Clamp(item.Top[k].Logprob), k + 1, prompts.TokenText(item.Top[k].TokenId)));
            return entries;
        })];

    static string Id(int tokenId) => tokenId.ToString(CultureInfo.InvariantCulture);

    /// Chat style: each token with its UTF-8 bytes and its top alternatives.
    public static ChatLogprobs Chat(IReadOnlyList<TokenLogprob> items, LogprobTokens names) =>
        new([.. items.Select(item =>
        {
            var text = names.Name(item.TokenId);
            return new ChatTokenLogprob(text, Clamp(item.Logprob), Bytes(text), [.. item.Top.Select(alt =>
            {
                var altText = names.Name(alt.TokenId);
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
