using Serving.Engine;

namespace Serving.Bench.Tests;

/// `serving-bench engine` on the CPU (a fixture checkpoint): a generation round and an embedding round (--runner
/// pooling) run every request to its end and report throughput.
public sealed class EngineBenchmarkTests
{
    [Theory]
    [InlineData("generate", 0.0)]
    [InlineData("generate", 0.5)]
    [InlineData("pooling", 0.0)]
    public async Task EveryRequestOfTheTraceRuns(string runner, double structuredMix)
    {
        var engine = new EngineOptions
        {
            Model = Fixtures.Dir("llama-gqa"), Dtype = "float32", KVCacheMemoryBytes = 4 << 20,
            Runner = Serving.Engine.Pooling.RunnerTypes.Parse(runner),
        };
        Assert.Equal(0, await EngineBenchmark.RunAsync(new EngineBenchmarkOptions(engine, NumPrompts: 6, InputLength: 12, OutputLength: 4, Seed: 1,
            structuredMix)));
    }
}
