using Serving.Engine.KVCache;

namespace Serving.Engine.Scheduling;

/// Refuses, before it is queued, a request the KV pool could never hold: it would otherwise wait forever or
/// preempt everyone else in vain. The request's own rules (ranges, context length) were checked when it was
/// submitted (Execution/RequestValidation); this is the one the scheduler alone can make.
internal static class AdmissionCheck
{
    /// maxStepTokens: the most tokens one step computes for a sequence (--max-num-batched-tokens).
    public static void Validate(GenerationRequest request, KVCacheManager kvCache, int maxStepTokens)
    {
        var numPrompt = request.PromptTokenIds.Count;
        var maxTokens = request.MaxNewTokens;
        var numBlocks = kvCache.MostBlocksHeld(numPrompt + maxTokens, maxStepTokens);
        if (numBlocks <= kvCache.NumBlocks)
            return;
        if (request.Pooling is not null)
            throw new InvalidRequestException(
                $"the input ({numPrompt} tokens) needs {numBlocks} KV blocks of {kvCache.BlockSize} tokens, but the whole KV cache has " +
                $"{kvCache.NumBlocks} blocks ({(long)kvCache.NumBlocks * kvCache.BlockSize} tokens)", "input");
        throw new InvalidRequestException(
            $"the prompt ({numPrompt} tokens) plus max_tokens ({maxTokens}) needs {numBlocks} KV blocks of " +
            $"{kvCache.BlockSize} tokens, but the whole KV cache has {kvCache.NumBlocks} blocks " +
            $"({(long)kvCache.NumBlocks * kvCache.BlockSize} tokens)", "max_tokens");
    }
}
