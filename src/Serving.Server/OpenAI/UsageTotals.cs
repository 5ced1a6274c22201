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
