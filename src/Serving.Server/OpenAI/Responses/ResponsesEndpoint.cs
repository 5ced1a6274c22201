using Serving.Server.Errors;
using Serving.Server.Generation;
using Serving.Server.OpenAI.Chat;
using Serving.Server.Streaming;
using Serving.Server.Telemetry;

namespace Serving.Server.OpenAI.Responses;

/// OpenAI's Responses API: POST /v1/responses (answered whole, as named events, or with background: true at once as
/// queued while it generates apart: BackgroundResponses; background and stream: its events as they come, from a log
/// a reconnecting client streams again with GET ?stream=true&starting_after=N), and for stored responses
/// GET /v1/responses/{id} (a background one's state as it goes), its input_items, DELETE, and cancel (a background
/// response still in progress).
internal static class ResponsesEndpoint
{
    public static void MapResponses(this RouteGroupBuilder v1)
    {
        v1.MapPost("/responses", CreateAsync);
        v1.MapGet("/responses/{id}", GetAsync);
        v1.MapGet("/responses/{id}/input_items", InputItemsOf);
        v1.MapDelete("/responses/{id}", async (string id, ResponseStore store, BackgroundResponses background) =>
        {
            await background.CancelAsync(id);   // one still generating stops first, so that it is not stored again
            background.Forget(id);
            return store.Delete(id)
                ? Results.Json(new ResponseDeleted(id, true), OpenAIJsonContext.Default.ResponseDeleted)
                : throw NotFound(id, null);
        });
        v1.MapPost("/responses/{id}/cancel", async (string id, ResponseStore store, BackgroundResponses background) =>
        {
            await background.CancelAsync(id);
            var stored = Stored(store, id).Response;
            // cancelling a cancelled response answers it again, as OpenAI does
            if (stored.Status != "cancelled")
                throw ApiException.BadRequest(stored.Background
                    ? $"This response has finished ({stored.Status}); only one still in progress can be cancelled."
                    : "Only responses created with background=true can be cancelled; this one has finished.");
            return Results.Json(stored, OpenAIJsonContext.Default.ResponseObject);
        });
    }

    static async Task CreateAsync(HttpContext context, ServingContext serving, ResponseStore store, BackgroundResponses background)
    {
        serving.EnsureReady();
        serving.EnsureRunner(Serving.Engine.Pooling.RunnerType.Generate, "Responses");
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.ResponsesRequest);
        var previous = request.PreviousResponseId is { } previousId
            ? store.Find(previousId) ?? throw NotFound(previousId, "previous_response_id") : null;
        Check.That(previous is null || previous.Response.Status is "completed" or "incomplete", "previous_response_id",
            $"The previous response is {previous?.Response.Status}: only a completed or incomplete one can be continued.");
        // vLLM's request_id (or X-Request-Id) names the response; one naming a stored response would stand for two
        var clientId = ClientRequestId.Of(context, request.RequestId);
        Check.That(clientId is null || store.Find(clientId) is null, ClientRequestId.ParamOf(context),
            $"A stored response has the id {clientId}; a request id names one response.");
        var plan = await serving.PreparePromptsAsync(() => ResponsesPlan.Create(request, previous, serving, clientId), context.RequestAborted);
        var observer = serving.Observer("chat");   // GenAI semantic conventions: a Responses call is a chat operation
        if (request.Background == true)
        {
            var queued = plan.Response("queued", [], null);
            Check.That(store.TrySave(new StoredResponse(queued, plan.Input, plan.Conversation), pinned: true), "store",
                "A background response is stored, and this one is larger than the store (--max-stored-response-bytes).");
            var apart = new Answer(plan, plan.Chat.NewChoiceStates(serving)[0], store);
            ResponseEventLog? log = null;
            if (request.Stream == true)
            {
                log = new ResponseEventLog(new ResponseStream(apart.Ids, plan.OutputLogprobs));
                log.Append([log.Events.Lifecycle("response.created", queued)]);
            }
            background.Start(plan.Id, cancelled => GenerateInBackgroundAsync(apart, serving, store, observer, log, cancelled), log);
            if (log is not null) await StreamLogAsync(context, log, startingAfter: -1);   // leaving early leaves it generating
            else await context.Response.WriteAsJsonAsync(queued, OpenAIJsonContext.Default.ResponseObject, cancellationToken: context.RequestAborted);
            return;
        }
        var aborted = context.RequestAborted;
        await using var run = await GenerationRun.StartAsync(serving.Engine, [plan.Chat.Generation], observer, aborted);
        var answer = new Answer(plan, plan.Chat.NewChoiceStates(serving)[0], store);
        if (request.Stream == true) await StreamAsync(context, answer, run, serving);
        else await AnswerWholeAsync(context, answer, run);
        observer.LogText(plan.Id, plan.Chat.PromptText, answer.Choice.Text);
    }

    /// A background response's generation, apart from the request that created it: stored in_progress once the engine
    /// takes it, then as it ends: completed or incomplete (Answer.Finish), cancelled (POST .../cancel), or failed. A
    /// streamed one's events go to its log as they are made (a cancelled one's end without a terminal event, OpenAI's
    /// stream having none for it).
    static async Task GenerateInBackgroundAsync(Answer answer, ServingContext serving, ResponseStore store, RequestObserver observer,
        ResponseEventLog? log, CancellationToken cancelled)
    {
        var plan = answer.Plan;
        // the states before the last are pinned in the store; the last is saved as any response
        void Save(ResponseObject response, bool pinned = false) =>
            store.TrySave(new StoredResponse(response, plan.Input, plan.Conversation), pinned);
        try
        {
            await using var run = await GenerationRun.StartAsync(serving.Engine, [plan.Chat.Generation], observer, cancelled);
            var inProgress = plan.Response("in_progress", [], null);
            Save(inProgress, pinned: true);
            log?.Append([log.Events.Lifecycle("response.in_progress", inProgress)]);
            await foreach (var item in run.ReadAllAsync(cancelled))
            {
                if (log is null) answer.Record(item.Event);
                else log.Append(log.Events.For(answer.Append(item.Event)));
            }
            cancelled.ThrowIfCancellationRequested();   // an answer the cancel aborted is cancelled, not incomplete
            var finished = answer.Finish();
            if (finished.Store != true)
                throw new ApiException(StatusCodes.Status500InternalServerError, ErrorTypes.Server,
                    "The response is larger than the store (--max-stored-response-bytes).", null, "server_error");
            log?.Append(log.Events.Finish(finished));
            observer.LogText(plan.Id, plan.Chat.PromptText, answer.Choice.Text);
        }
        catch (OperationCanceledException) when (cancelled.IsCancellationRequested)
        {
            Save(plan.Response("cancelled", [], null));
        }
        catch (Exception exception)
        {
            if (exception is not ApiException) serving.LogStreamFailure(plan.Id, exception);
            var error = ErrorMapping.ToApiException(exception);
            var failed = plan.Response("failed", [], null) with { Error = new ResponseError(error.Code ?? error.Type, error.Message) };
            Save(failed);
            log?.Append(log.Events.Failure(error, failed));
        }
    }

    /// A background response's logged events after startingAfter, as they come, until its last (or the client leaves).
    static async Task StreamLogAsync(HttpContext context, ResponseEventLog log, int startingAfter)
    {
        var aborted = context.RequestAborted;
        var sse = new SseWriter(context.Response);
        await sse.StartAsync(aborted);
        try
        {
            await foreach (var e in log.ReadAsync(startingAfter, aborted))
                await sse.WriteEventAsync(e.Type, e, OpenAIJsonContext.Default.ResponseEvent, aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // the reader left; the response generates on
        }
    }

    /// A stored response; with stream=true, a background streamed one's events after starting_after (default: all),
    /// then as they come. stream and starting_after are read here, not bound: a value of the wrong kind is a 400 naming it.
    static async Task GetAsync(HttpContext context, string id, ResponseStore store, BackgroundResponses background, string? stream,
        string? starting_after)
    {
        Check.That(stream is null or "true" or "false", "stream", $"stream must be true or false (got '{stream}').");
        int? after = starting_after is null ? null
            : int.TryParse(starting_after, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var parsed) && parsed >= 0
                ? parsed
                : throw ApiException.BadRequest($"starting_after must be a sequence number, an integer of 0 or more (got '{starting_after}').", "starting_after");
        var stored = Stored(store, id).Response;
        if (stream != "true")
        {
            await context.Response.WriteAsJsonAsync(stored, OpenAIJsonContext.Default.ResponseObject, cancellationToken: context.RequestAborted);
            return;
        }
        var log = background.Log(id) ?? throw ApiException.BadRequest(
            "Only a response created with background and stream can be streamed again (and only while it is among the last "
            + $"{BackgroundResponses.FinishedLogsKept} finished).", "stream");
        await StreamLogAsync(context, log, after ?? -1);
    }

    static async Task AnswerWholeAsync(HttpContext context, Answer answer, GenerationRun run)
    {
        var aborted = context.RequestAborted;
        await foreach (var item in run.ReadAllAsync(aborted)) answer.Record(item.Event);
        await context.Response.WriteAsJsonAsync(answer.Finish(), OpenAIJsonContext.Default.ResponseObject, cancellationToken: aborted);
    }

    static async Task StreamAsync(HttpContext context, Answer answer, GenerationRun run, ServingContext serving)
    {
        var aborted = context.RequestAborted;
        var sse = new SseWriter(context.Response);
        var events = new ResponseStream(answer.Ids, answer.Plan.OutputLogprobs);
        Task Write(ResponseEvent e) => sse.WriteEventAsync(e.Type, e, OpenAIJsonContext.Default.ResponseEvent, aborted);
        await sse.StartAsync(aborted);
        var inProgress = answer.Plan.Response("in_progress", [], null);
        await Write(events.Lifecycle("response.created", inProgress));
        await Write(events.Lifecycle("response.in_progress", inProgress));
        try
        {
            await foreach (var item in run.ReadAllAsync(aborted))
                foreach (var e in events.For(answer.Append(item.Event))) await Write(e);
            foreach (var e in events.Finish(answer.Finish())) await Write(e);
        }
        catch (Exception exception) when (!aborted.IsCancellationRequested)
        {
            serving.LogStreamFailure(answer.Plan.Id, exception);
            foreach (var e in events.Failure(ErrorMapping.ToApiException(exception), answer.Plan.Response("failed", [], null))) await Write(e);
        }
    }

    /// The one answer of a response as its events arrive, and the response it makes once finished (stored unless
    /// the request said store: false).
    sealed class Answer(ResponsesPlan plan, ChatChoiceState choice, ResponseStore store)
    {
        readonly UsageTotals _usage = new();

        public ResponsesPlan Plan => plan;
        public ChatChoiceState Choice => choice;
        public OutputIds Ids { get; } = new();

        public void Record(Serving.Engine.TokenEvent e)
        {
            choice.Record(e);
            _usage.Add(e.Usage);
        }

        public ChatChunkChoice Append(Serving.Engine.TokenEvent e)
        {
            _usage.Add(e.Usage);
            return choice.Append(e);
        }

        public ResponseObject Finish()
        {
            var whole = choice.ToChoice();
            var output = ResponseOutput.Items(whole, Ids, plan.OutputLogprobs);
            var response = plan.Response(ResponseOutput.Status(whole.FinishReason), output,
                ResponseOutput.Usage(_usage.ToUsage(), choice.ReasoningTokens())) with
            {
                IncompleteDetails = ResponseOutput.Incomplete(whole.FinishReason),
            };
            var stored = plan.Store && store.TrySave(new StoredResponse(response, plan.Input, [.. plan.Conversation, .. output]));
            return response with { Store = stored };
        }
    }

    /// A stored response's input, newest first unless order=asc, a page of limit (1-100, default 20) after the item
    /// id "after".
    /// limit is read here, not bound: a value that is not a number is a 400 naming it, not the binder's bare 400.
    static IResult InputItemsOf(string id, ResponseStore store, string? limit, string? order, string? after)
    {
        int? count = limit is null ? null
            : int.TryParse(limit, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed
            : throw ApiException.BadRequest($"limit must be an integer from 1 to 100 (got '{limit}').", "limit");
        Check.InRange(count, 1, 100, "limit");
        Check.That(order is null or "asc" or "desc", "order", "order must be asc or desc.");
        IEnumerable<ResponseItem> items = order == "asc" ? Stored(store, id).Input : Stored(store, id).Input.Reverse();
        if (after is not null) items = items.SkipWhile(item => item.Id != after).Skip(1);
        var all = items.ToList();
        var page = all.Take(count ?? 20).ToList();
        return Results.Json(new ItemList(page, page.FirstOrDefault()?.Id, page.LastOrDefault()?.Id, all.Count > page.Count),
            OpenAIJsonContext.Default.ItemList);
    }

    static StoredResponse Stored(ResponseStore store, string id) => store.Find(id) ?? throw NotFound(id, null);

    static ApiException NotFound(string id, string? param) =>
        new(StatusCodes.Status404NotFound, ErrorTypes.NotFound, $"Response with id '{id}' not found.", param, "response_not_found");
}
