using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Execution;

/// Starting a real engine on a fixture checkpoint and collecting what a request streams.
internal static class EngineTestHelpers
{
    public static async Task<LlmEngine> StartAsync(string fixture = "llama-gqa", Func<EngineOptions, EngineOptions>? configure = null)
    {
        var options = new EngineOptions { Model = Fixtures.Dir(fixture), Dtype = "float32" };
        options = configure?.Invoke(options) ?? options;
        // a small CPU pool unless the test sizes it; on CUDA the pool is sized as a server sizes it (--gpu-memory-utilization)
        if (options.Device == "cpu" && options.KVCacheMemoryBytes is null) options = options with { KVCacheMemoryBytes = 4 << 20 };
        var engine = new LlmEngine(options);
        try
        {
            await engine.WaitUntilReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            // stopped before the test fails: an engine still starting would otherwise go on beside the next tests (on a
            // GPU its decode-graph capture then fails their synchronizations)
            await engine.DisposeAsync();
            throw;
        }
        return engine;
    }

    public static GenerationRequest Greedy(IReadOnlyList<int> prompt, int maxTokens, string? id = null) => new()
    {
        RequestId = id ?? Guid.NewGuid().ToString("N"),
        PromptTokenIds = prompt,
        Sampling = SamplingParams.Greedy with { MaxTokens = maxTokens, IgnoreEos = true },
    };

    /// Everything a request streamed, grouped by sequence index.
    public static async Task<Completion> CollectAsync(ILlmEngine engine, GenerationRequest request,
        CancellationToken cancellationToken = default)
    {
        var events = new List<TokenEvent>();
        await foreach (var tokenEvent in engine.GenerateAsync(request, cancellationToken))
            events.Add(tokenEvent);
        return new Completion(events);
    }

    /// Waits until the engine reports no request and every KV block free (blocks are freed within a step).
    public static Task WaitForIdleAsync(ILlmEngine engine) => WaitUntilAsync(engine,
        stats => stats.RunningRequests == 0 && stats.WaitingRequests == 0 && stats.KVUsage == 0, "the engine to become idle");

    /// Polls the engine's stats until condition holds; fails after 20 s.
    public static async Task WaitUntilAsync(ILlmEngine engine, Func<EngineStats, bool> condition, string what = "the condition")
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition(engine.GetStats()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}; stats: {engine.GetStats()}");
            await Task.Delay(1);
        }
    }
}

internal sealed record Completion(IReadOnlyList<TokenEvent> Events)
{
    public int[] Tokens(int index = 0) => Events.Where(e => e.Index == index).SelectMany(e => e.TokenIds).ToArray();

    public string Text(int index = 0) => string.Concat(Events.Where(e => e.Index == index).Select(e => e.TextDelta));

    public FinishReason? Finish(int index = 0) => Events.Last(e => e.Index == index).FinishReason;

    public RequestUsage Usage => Events.Last().Usage ?? throw new InvalidOperationException("no usage on the last event");
}
