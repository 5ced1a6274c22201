using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// Model ids with slashes (Hugging Face "org/name", and the default served name, which is the --model path)
/// can be fetched by GET /v1/models/{id}, as vLLM serves them.
public sealed class ModelRoutesTests
{
    [Theory]
    [InlineData("org/tiny-model")]
    [InlineData(null)]
    public async Task AModelIdWithSlashesIsServedByTheModelRoute(string? servedName)
    {
        await using var server = await RunningServer.StartAsync(servedModelName: servedName);
        var id = servedName ?? Fixtures.Dir("llama-gqa");
        Assert.Contains('/', id);
        // An absolute path gives "/v1/models//abs/path", as with vLLM.
        var card = JsonNode.Parse(await server.Http.GetStringAsync($"/v1/models/{id}"))!;
        Assert.Equal(id, card["id"]!.GetValue<string>());
        var (status, body) = await server.PostAsync("/v1/completions", new { model = id, prompt = "Hello", max_tokens = 2 });
        Assert.Equal(200, status);
        Assert.Equal(id, body!["model"]!.GetValue<string>());
        using var missing = await server.Http.GetAsync($"/v1/models/{id}-other");
        Assert.Equal(404, (int)missing.StatusCode);
    }

    [Fact]
    public async Task AModelServedUnderSeveralNamesAnswersToEachAndCarriesTheFirst()
    {
        await using var server = await RunningServer.StartAsync(["--served-model-name", "llama", "llama-3.1-8b"], servedModelName: null);
        var list = JsonNode.Parse(await server.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal(["llama", "llama-3.1-8b"], list["data"]!.AsArray().Select(card => card!["id"]!.GetValue<string>()));
        var card = JsonNode.Parse(await server.Http.GetStringAsync("/v1/models/llama-3.1-8b"))!;
        Assert.Equal("llama-3.1-8b", card["id"]!.GetValue<string>());
        var (status, body) = await server.PostAsync("/v1/completions", new { model = "llama-3.1-8b", prompt = "Hello", max_tokens = 2 });
        Assert.Equal(200, status);
        Assert.Equal("llama", body!["model"]!.GetValue<string>());
        Assert.Equal(404, (await server.PostAsync("/v1/completions", new { model = "llama-3", prompt = "Hello", max_tokens = 2 })).Status);
        var grpc = await server.Grpc().ListModelsAsync(new Serving.Grpc.V1.ListModelsRequest());
        Assert.Equal(["llama", "llama-3.1-8b"], grpc.Models.Select(m => m.Id));
        var info = await server.Grpc().GetModelInfoAsync(new Serving.Grpc.V1.GetModelInfoRequest { Model = "llama-3.1-8b" });
        Assert.Equal("llama-3.1-8b", info.Id);
    }
}
