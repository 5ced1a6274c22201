using System.Text.Json.Nodes;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// --tensor-parallel-size on CPU: the server's model is split over in-process ranks, serves transformers' greedy
/// tokens all the same, and reports the split and the per-GPU KV bytes in /v1/models and GetModelInfo.
public sealed class TensorParallelServerTests
{
    static readonly FixtureReference Reference = Fixtures.Reference("llama-gqa");

    [Fact]
    public async Task AModelSplitOverTwoRanksServesTheReferenceAndSaysSo()
    {
        await using var server = await RunningServer.StartAsync(["--tensor-parallel-size", "2", "--kv-cache-memory", "4194304"]);
        foreach (var prompt in Reference.Prompts.Take(2))
        {
            var (status, body) = await server.PostAsync("/v1/completions", new
            {
                model = RunningServer.Model, prompt = prompt.InputIds, max_tokens = 16, temperature = 0, ignore_eos = true,
                return_token_ids = true,
            });
            Assert.Equal(200, status);
            Assert.Equal(prompt.Greedy16, body!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<int>()));
        }

        var card = JsonNode.Parse(await server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["model_info"]!;
        Assert.Equal(2, card["tensor_parallel_size"]!.GetValue<int>());
        // K and V x 2 layers x 1 KV head per rank (2 KV heads over 2 ranks) x head dim 8 x float32
        Assert.Equal(2L * 2 * 1 * 8 * 4, card["kv_bytes_per_token"]!.GetValue<long>());
        Assert.Equal(2, card["num_key_value_heads"]!.GetValue<int>());   // the model's, not a rank's

        var info = await server.Grpc().GetModelInfoAsync(new GetModelInfoRequest { Model = RunningServer.Model });
        Assert.Equal((2, 2L * 2 * 1 * 8 * 4), (info.TensorParallelSize, info.KvBytesPerToken));
    }
}
