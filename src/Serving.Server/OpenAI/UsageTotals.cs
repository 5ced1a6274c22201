using Serving.Engine;

namespace Serving.Server.OpenAI;

/// Sums the usage of a request's prompts (each prompt's last event carries its own).
internal sealed class UsageTotals
{
    int _prompt, _completion, _cached;

    public void Add(RequestUsage? usage)
    {
        if (usage is null) return;
        _prompt += usage.PromptTokens;
        _completion += usage.CompletionTokens;
        _cached += usage.CachedPromptTokens;
    }

    public Usage ToUsage() => new(_prompt, _completion, _prompt + _completion, new PromptTokensDetails(_cached));
}

/// Each choice's usage so far, for stream_options.continuous_usage_stats: its prompt's tokens and the tokens it has
/// generated until this event (the prompt's cached tokens are known from its last event on).
internal sealed class ContinuousUsage(int numChoices)
{
    readonly int[] _generated = new int[numChoices];

    public Usage After(int choice, int promptTokens, TokenEvent e)
    {
        _generated[choice] += e.TokenIds.Count;
        return new Usage(promptTokens, _generated[choice], promptTokens + _generated[choice],
            new PromptTokensDetails(e.Usage?.CachedPromptTokens ?? 0));
    }
}
