using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.Grpc;

/// serving.v1.Generation: a thin adapter over the engine, sharing the HTTP API's admission state,
/// limits, model check and telemetry (ServingContext). Failures are ApiExceptions or engine exceptions,
/// which ErrorInterceptor turns into status codes.
internal sealed class GenerationService(ServingContext serving) : Serving.Grpc.V1.Generation.GenerationBase
{
    public override async Task Generate(GenerateRequest request, IServerStreamWriter<GenerateResponse> responseStream,
        ServerCallContext context)
    {
        Admit(request.Model);
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Generate, "Generate");
        var plan = await serving.PreparePromptsAsync(() => GeneratePlan.Create(request, serving), context.CancellationToken);
        var observer = serving.Observer(plan.Prompt.Operation, "grpc");
        // The call's token ends on client cancel and on an expired deadline: either aborts the engine request.
        var cancellationToken = context.CancellationToken;
        // Refusals (invalid, queue full, unavailable) surface here, before any message is written.
        await using var run = await GenerationRun.StartAsync(serving.Engine, [plan.Generation], observer, cancellationToken);
        var responses = new GenerateResponses(plan.RequestId, plan.Generation.Sampling.N, serving.Prompts);
        await foreach (var item in run.ReadAllAsync(cancellationToken))
            foreach (var response in responses.For(item.Event))
                await responseStream.WriteAsync(response, cancellationToken);
        observer.LogText(plan.Generation.RequestId, plan.Prompt.Text, responses.Texts);
    }

    public override async Task<EmbedResponse> Embed(EmbedRequest request, ServerCallContext context)
    {
        Admit(request.Model);
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Pooling, "Embed");
        serving.EnsurePoolingTask(classify: false, "Embed");
        var plan = await serving.PreparePromptsAsync(() => EmbedPlan.Create(request, serving), context.CancellationToken);
        var observer = serving.Observer(Telemetry.ServerMetrics.EmbeddingsOperation, "grpc");
        var (vectors, promptTokens) = await EmbeddingRun.RunAsync(serving, plan.Requests, observer, context.CancellationToken);
        var response = new EmbedResponse { Model = plan.Model };
        response.Embeddings.Add(vectors.Select((vector, i) => new Embedding { Index = i, Values = { vector } }));
        response.Usage = new Usage { PromptTokens = promptTokens, TotalTokens = promptTokens };
        return response;
    }

    public override async Task<TokenizeResponse> Tokenize(TokenizeRequest request, ServerCallContext context)
    {
        Admit(request.Model);
        var prompts = serving.Prompts;
        var ids = await serving.PreparePromptsAsync(() => request.InputCase switch
        {
            TokenizeRequest.InputOneofCase.Text => prompts.Encode(request.Text, PromptEncoding.AddSpecialTokens(request.HasAddSpecialTokens ? request.AddSpecialTokens : null, chat: false), "text"),
            TokenizeRequest.InputOneofCase.Chat => prompts.Encode(GrpcPrompts.RenderChat(request.Chat, prompts),
                PromptEncoding.AddSpecialTokens(request.HasAddSpecialTokens ? request.AddSpecialTokens : null, chat: true), "chat.messages"),
            _ => throw ApiException.BadRequest("input is required: set text or chat.", "input"),
        }, context.CancellationToken);
        var response = new TokenizeResponse { MaxModelLen = serving.Engine.Info.MaxModelLen };
        response.TokenIds.Add(ids);
        if (request.ReturnTokenTexts) response.TokenTexts.Add(ids.Select(prompts.TokenText));
        return response;
    }

    public override Task<DetokenizeResponse> Detokenize(DetokenizeRequest request, ServerCallContext context)
    {
        Admit(request.Model);
        Check.TokenIds(request.TokenIds, serving.Prompts.VocabSize, "token_ids");
        var text = serving.Prompts.Decode(request.TokenIds, request.SkipSpecialTokens);
        return Task.FromResult(new DetokenizeResponse { Text = text });
    }

    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        Admit(request.Model);
        return Task.FromResult(ModelInfos.Of(serving, request.Model.Length == 0 ? null : request.Model));
    }

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        serving.EnsureReady();
        return Task.FromResult(new ListModelsResponse
        {
            Models = { serving.ModelNames.Concat(serving.LoraAdapters.Select(adapter => adapter.Name)).Select(name => ModelInfos.Of(serving, name)) },
        });
    }

    /// UNAVAILABLE unless the server takes work; NOT_FOUND for a model other than the served one ("" is it).
    void Admit(string model)
    {
        serving.EnsureReady();
        serving.CheckModel(model.Length == 0 ? null : model);
    }
}
