#pragma warning disable OPENAI001 // the SDK marks its Responses client experimental
using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI.Responses;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.OpenAI;

/// POST /v1/responses through the official SDK's ResponsesClient and Microsoft.Extensions.AI on the real server:
/// a response is the chat API's answer to the same conversation (same prompt tokens, same greedy text), whole and
/// streamed as named events; stored responses continue with previous_response_id, can be read back and deleted.
[Collection("server")]
public sealed class ResponsesApiTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    ResponsesClient Responses => _server.OpenAI().GetResponsesClient();

    static CreateResponseOptions Greedy(int maxTokens, params ResponseItem[] input) =>
        new(RunningServer.Model, input) { MaxOutputTokenCount = maxTokens, Temperature = 0 };

    /// The chat API's greedy answer to the same messages: its text, prompt and output token counts, finish reason.
    async Task<(string Text, int PromptTokens, int CompletionTokens, string Finish)> ChatAsync(int maxTokens, params object[] messages)
    {
        var (status, body) = await _server.PostAsync("/v1/chat/completions",
            new { model = RunningServer.Model, messages, max_tokens = maxTokens, temperature = 0 });
        Assert.Equal(200, status);
        var choice = body!["choices"]![0]!;
        return (choice["message"]!["content"]!.GetValue<string>(), body["usage"]!["prompt_tokens"]!.GetValue<int>(),
            body["usage"]!["completion_tokens"]!.GetValue<int>(), choice["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task AResponseIsTheChatAnswerWholeAndStreamed()
    {
        var chat = await ChatAsync(12, new { role = "user", content = "Hello!" });
        ResponseResult whole = await Responses.CreateResponseAsync(Greedy(12, ResponseItem.CreateUserMessageItem("Hello!")));
        Assert.StartsWith("resp_", whole.Id);
        Assert.Equal(RunningServer.Model, whole.Model);
        Assert.Equal(chat.Text, whole.GetOutputText());
        Assert.Equal((chat.PromptTokens, chat.CompletionTokens), (whole.Usage.InputTokenCount, whole.Usage.OutputTokenCount));
        Assert.Equal(whole.Usage.InputTokenCount + whole.Usage.OutputTokenCount, whole.Usage.TotalTokenCount);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(whole.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        Assert.Equal(chat.Finish == "length" ? ResponseStatus.Incomplete : ResponseStatus.Completed, whole.Status);
        if (chat.Finish == "length") Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, whole.IncompleteStatusDetails.Reason);

        var deltas = new StringBuilder();
        var updates = new List<StreamingResponseUpdate>();
        var streaming = Greedy(12, ResponseItem.CreateUserMessageItem("Hello!"));
        streaming.StreamingEnabled = true;
        await foreach (var update in Responses.CreateResponseStreamingAsync(streaming))
        {
            updates.Add(update);
            if (update is StreamingResponseOutputTextDeltaUpdate delta) deltas.Append(delta.Delta);
        }
        Assert.Equal(Enumerable.Range(0, updates.Count), updates.Select(u => u.SequenceNumber));
        Assert.IsType<StreamingResponseCreatedUpdate>(updates[0]);
        Assert.IsType<StreamingResponseInProgressUpdate>(updates[1]);
        Assert.Equal(chat.Text, deltas.ToString());
        Assert.Equal(chat.Text, updates.OfType<StreamingResponseOutputTextDoneUpdate>().Single().Text);
        var last = updates[^1];
        var final = last switch
        {
            StreamingResponseCompletedUpdate completed => completed.Response,
            StreamingResponseIncompleteUpdate incomplete => incomplete.Response,
            _ => throw new Xunit.Sdk.XunitException($"the stream ended with {last.GetType().Name}"),
        };
        Assert.Equal(whole.Status, final.Status);
        Assert.Equal(chat.Text, final.GetOutputText());
        Assert.Equal(whole.Usage.OutputTokenCount, final.Usage.OutputTokenCount);
        // the item announced, the item finished and the item listed are one item
        var added = updates.OfType<StreamingResponseOutputItemAddedUpdate>().Single().Item;
        Assert.Equal(added.Id, updates.OfType<StreamingResponseOutputItemDoneUpdate>().Single().Item.Id);
        Assert.Equal(added.Id, final.OutputItems.Single().Id);
    }

    [Fact]
    public async Task PreviousResponseIdContinuesTheStoredConversation()
    {
        ResponseResult first = await Responses.CreateResponseAsync(Greedy(6, ResponseItem.CreateUserMessageItem("Hello!")));
        var second = Greedy(8, ResponseItem.CreateUserMessageItem("And then?"));
        second.PreviousResponseId = first.Id;
        ResponseResult next = await Responses.CreateResponseAsync(second);
        Assert.Equal(first.Id, next.PreviousResponseId);

        var chat = await ChatAsync(8, new { role = "user", content = "Hello!" }, new { role = "assistant", content = first.GetOutputText() },
            new { role = "user", content = "And then?" });
        Assert.Equal(chat.PromptTokens, next.Usage.InputTokenCount);
        Assert.Equal(chat.Text, next.GetOutputText());

        ResponseResult stored = await Responses.GetResponseAsync(first.Id);
        Assert.Equal(first.GetOutputText(), stored.GetOutputText());
        Assert.Equal(first.OutputItems.Single().Id, stored.OutputItems.Single().Id);

        ResponseDeletionResult deleted = await Responses.DeleteResponseAsync(first.Id);
        Assert.True(deleted.Deleted);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => Responses.GetResponseAsync(first.Id));
        Assert.Equal(404, gone.Status);
        // the continuation was stored on its own: it still continues
        var third = Greedy(4, ResponseItem.CreateUserMessageItem("Go on."));
        third.PreviousResponseId = next.Id;
        Assert.Equal(ResponseStatus.Incomplete, (await Responses.CreateResponseAsync(third)).Value.Status);
    }

    [Fact]
    public async Task InstructionsAndInputItemsRenderAsTheChatMessages()
    {
        var input = new JsonArray
        {
            new JsonObject { ["role"] = "user", ["content"] = "Hi" },
            new JsonObject { ["type"] = "message", ["role"] = "assistant", ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = "Hello." }) },
            new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = "Tell" }, new JsonObject { ["type"] = "input_text", ["text"] = "me" }) },
        };
        var (status, body) = await _server.PostAsync("/v1/responses",
            new { model = RunningServer.Model, instructions = "Be brief.", input, max_output_tokens = 6, temperature = 0 });
        Assert.Equal(200, status);
        var chat = await ChatAsync(6, new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi" },
            new { role = "assistant", content = "Hello." }, new { role = "user", content = "Tell\nme" });
        Assert.Equal(chat.PromptTokens, body!["usage"]!["input_tokens"]!.GetValue<int>());
        Assert.Equal(chat.Text, body["output"]![0]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("Be brief.", body["instructions"]!.GetValue<string>());

        // the input, listed newest first by default, in pages
        var id = body["id"]!.GetValue<string>();
        var page = JsonNode.Parse(await _server.Http.GetStringAsync($"/v1/responses/{id}/input_items?limit=2"))!;
        Assert.Equal(["message", "message"], page["data"]!.AsArray().Select(i => i!["type"]!.GetValue<string>()));
        Assert.Equal("user", page["data"]![0]!["role"]!.GetValue<string>());
        Assert.True(page["has_more"]!.GetValue<bool>());
        var rest = JsonNode.Parse(await _server.Http.GetStringAsync($"/v1/responses/{id}/input_items?limit=2&after={page["last_id"]}"))!;
        Assert.Equal("Hi", rest["data"]!.AsArray().Single()!["content"]![0]!["text"]!.GetValue<string>());
        Assert.False(rest["has_more"]!.GetValue<bool>());
        var ascending = JsonNode.Parse(await _server.Http.GetStringAsync($"/v1/responses/{id}/input_items?order=asc"))!;
        Assert.Equal("Hi", ascending["data"]![0]!["content"]![0]!["text"]!.GetValue<string>());
        foreach (var limit in new[] { "abc", "99999999999", "0" })
        {
            using var refused = await _server.Http.GetAsync($"/v1/responses/{id}/input_items?limit={limit}");
            Assert.Equal(400, (int)refused.StatusCode);
            Assert.Equal("limit", JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["param"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task StoreFalseKeepsNothing()
    {
        var (status, body) = await _server.PostAsync("/v1/responses", new { model = RunningServer.Model, input = "Hi", max_output_tokens = 2, store = false });
        Assert.Equal(200, status);
        Assert.False(body!["store"]!.GetValue<bool>());
        var id = body["id"]!.GetValue<string>();
        using var get = await _server.Http.GetAsync($"/v1/responses/{id}");
        Assert.Equal(404, (int)get.StatusCode);
        var (continued, error) = await _server.PostAsync("/v1/responses", new { model = RunningServer.Model, input = "Hi", previous_response_id = id });
        Assert.Equal(404, continued);
        Assert.Equal("previous_response_id", error!["error"]!["param"]!.GetValue<string>());
        var (cancel, _) = await _server.PostAsync($"/v1/responses/{id}/cancel", new { });
        Assert.Equal(404, cancel);
    }

    [Fact]
    public async Task TruncationAutoDropsTheFewestOldestMessagesThatMakeItFit()
    {
        // twelve turns of some 20 tokens each: far more than the fixture's 256 positions
        var turns = Enumerable.Range(0, 12).Select(i => new
        {
            role = i % 2 == 0 ? "user" : "assistant",
            content = $"message {i}: " + string.Join(" ", Enumerable.Repeat("words fill the context", 4))
        }).ToArray();
        object Body(string truncation) => new { model = RunningServer.Model, instructions = "Be brief.", input = turns, max_output_tokens = 16, truncation };
        var (refused, error) = await _server.PostAsync("/v1/responses", Body("disabled"));
        Assert.Equal(400, refused);
        Assert.Contains("maximum context length", error!["error"]!["message"]!.GetValue<string>());

        var (status, body) = await _server.PostAsync("/v1/responses", Body("auto"));
        Assert.Equal(200, status);
        Assert.Equal("auto", body!["truncation"]!.GetValue<string>());
        var inputTokens = body["usage"]!["input_tokens"]!.GetValue<int>();
        // the chat API over the longest tail of the conversation that starts at a user message and fits: the same prompt
        int? tailTokens = null;
        for (var keep = turns.Length; keep >= 1 && tailTokens is null; keep -= 2)
        {
            var (fits, chat) = await _server.PostAsync("/v1/chat/completions", new
            {
                model = RunningServer.Model, max_tokens = 16,
                messages = new[] { new { role = "system", content = "Be brief." } }.Concat(turns.Skip(turns.Length - keep)).ToArray(),
            });
            if (fits == 200) tailTokens = chat!["usage"]!["prompt_tokens"]!.GetValue<int>();
        }
        Assert.Equal(tailTokens, inputTokens);
        Assert.True(inputTokens + 16 <= 256);
    }

    [Fact]
    public async Task MicrosoftExtensionsAIChatsOverTheResponsesApi()
    {
        var chat = await ChatAsync(10, new { role = "user", content = "Hello!" });
        IChatClient client = Responses.AsIChatClient(RunningServer.Model);
        var options = new ChatOptions { MaxOutputTokens = 10, Temperature = 0 };
        var answer = await client.GetResponseAsync("Hello!", options);
        Assert.Equal(chat.Text, answer.Text);
        Assert.Equal(chat.CompletionTokens, (int?)answer.Usage?.OutputTokenCount);
        var streamed = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync("Hello!", options)) streamed.Append(update.Text);
        Assert.Equal(chat.Text, streamed.ToString());
    }

    [Fact]
    public async Task ABackgroundResponseIsQueuedThenReadBackAsItCompletesAndCanBeCancelled()
    {
        var chat = await ChatAsync(12, new { role = "user", content = "Hello!" });
        var options = Greedy(12, ResponseItem.CreateUserMessageItem("Hello!"));
        options.BackgroundModeEnabled = true;
        ResponseResult queued = await Responses.CreateResponseAsync(options);
        Assert.Equal(ResponseStatus.Queued, queued.Status);
        Assert.True(queued.BackgroundModeEnabled);
        var done = await PollAsync(queued.Id, status => status is ResponseStatus.Completed or ResponseStatus.Incomplete);
        Assert.Equal(chat.Text, done.GetOutputText());
        Assert.Equal(chat.CompletionTokens, done.Usage.OutputTokenCount);
        var finished = await Assert.ThrowsAsync<ClientResultException>(() => Responses.CancelResponseAsync(queued.Id));
        Assert.Equal(400, finished.Status);
    }

    /// background and stream: the events come as they are made, numbered from 0, the first the response queued; a client
    /// that leaves after the first text reads the rest with GET ?stream=true&starting_after=N (the SDK's
    /// GetResponseStreamingAsync), and together they are the chat API's answer; once finished, the log streams again
    /// from the start, event for event.
    [Fact]
    public async Task ABackgroundStreamResumesAfterTheLastSequenceNumberSeen()
    {
        var chat = await ChatAsync(12, new { role = "user", content = "Hello!" });
        var options = Greedy(12, ResponseItem.CreateUserMessageItem("Hello!"));
        options.BackgroundModeEnabled = true;
        options.StreamingEnabled = true;
        var first = new List<StreamingResponseUpdate>();
        await foreach (var update in Responses.CreateResponseStreamingAsync(options))
        {
            first.Add(update);
            if (update is StreamingResponseOutputTextDeltaUpdate) break;   // the client leaves; the response generates on
        }
        var created = Assert.IsType<StreamingResponseCreatedUpdate>(first[0]);
        Assert.Equal(ResponseStatus.Queued, created.Response.Status);
        Assert.True(created.Response.BackgroundModeEnabled);
        var id = created.Response.Id;

        async Task<List<StreamingResponseUpdate>> ReadAsync(int? startingAfter)
        {
            var read = new List<StreamingResponseUpdate>();
            await foreach (var update in Responses.GetResponseStreamingAsync(new GetResponseOptions(id) { StartingAfter = startingAfter, StreamingEnabled = true }))
                read.Add(update);
            return read;
        }
        var all = first.Concat(await ReadAsync(first[^1].SequenceNumber)).ToList();
        Assert.Equal(Enumerable.Range(0, all.Count), all.Select(u => u.SequenceNumber));
        Assert.IsType<StreamingResponseInProgressUpdate>(all[1]);
        Assert.Equal(chat.Text, string.Concat(all.OfType<StreamingResponseOutputTextDeltaUpdate>().Select(d => d.Delta)));
        var final = all[^1] switch
        {
            StreamingResponseCompletedUpdate completed => completed.Response,
            StreamingResponseIncompleteUpdate incomplete => incomplete.Response,
            var last => throw new Xunit.Sdk.XunitException($"the stream ended with {last.GetType().Name}"),
        };
        Assert.Equal(chat.Text, final.GetOutputText());
        Assert.Equal(final.Status, (await Responses.GetResponseAsync(id)).Value.Status);
        var again = await ReadAsync(null);
        Assert.Equal(all.Select(u => (u.SequenceNumber, u.GetType())), again.Select(u => (u.SequenceNumber, u.GetType())));
    }

    /// Streaming again is for background streamed responses only; stream and starting_after of the wrong kind are 400s
    /// naming them; an unknown id is a 404.
    [Fact]
    public async Task StreamingAStoredResponseAgainIsRefusedWhereItCannotBe()
    {
        ResponseResult whole = await Responses.CreateResponseAsync(Greedy(4, ResponseItem.CreateUserMessageItem("Hello!")));
        foreach (var (query, param) in new[] { ("stream=true", "stream"), ("stream=maybe", "stream"), ("stream=true&starting_after=x", "starting_after"),
            ("stream=true&starting_after=-2", "starting_after") })
        {
            using var response = await _server.Http.GetAsync($"/v1/responses/{whole.Id}?{query}");
            var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
            Assert.True(400 == (int)response.StatusCode, query);
            Assert.Equal(param, error["param"]!.GetValue<string>());
        }
        using var unknown = await _server.Http.GetAsync("/v1/responses/resp_nothing?stream=true");
        Assert.Equal(404, (int)unknown.StatusCode);
    }

    Task<ResponseResult> PollAsync(string id, Func<ResponseStatus?, bool> until) => PollAsync(Responses, id, until);

    /// GET /v1/responses/{id} until its status is one of until's (60 s at most).
    internal static async Task<ResponseResult> PollAsync(ResponsesClient responses, string id, Func<ResponseStatus?, bool> until)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            ResponseResult response = await responses.GetResponseAsync(id);
            if (until(response.Status)) return response;
            Assert.True(DateTime.UtcNow < deadline, $"response {id} is still {response.Status}");
            await Task.Delay(20);
        }
    }

    [Theory]
    [InlineData("""{"input": 5}""", "input")]
    [InlineData("""{"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}""", "input[0].content[0].type")]
    [InlineData("""{"input": [{"role": "robot", "content": "hi"}]}""", "input[0].role")]
    [InlineData("""{"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}""", "input[0].call_id")]
    [InlineData("""{"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{not json"}]}""", "input[1].arguments")]
    [InlineData("""{"input": [{"type": "item_reference", "id": "msg_1"}]}""", "input[0].type")]
    [InlineData("""{"input": "hi", "max_output_tokens": 0}""", "max_output_tokens")]
    [InlineData("""{"input": "hi", "tools": [{"type": "web_search"}]}""", "tools[0].type")]
    [InlineData("""{"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "bogus"}}], "tool_choice": "required"}""", "tools[0].parameters")]
    [InlineData("""{"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}""", "tool_choice.name")]
    [InlineData("""{"input": "hi", "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "bogus"}}}}""", "text.format.schema")]
    [InlineData("""{"input": "hi", "text": {"format": {"type": "xml"}}}""", "text.format.type")]
    [InlineData("""{"input": "hi", "background": true, "store": false}""", "store")]
    [InlineData("""{"input": "hi", "truncation": "middle"}""", "truncation")]
    [InlineData("""{"input": "hi", "include": ["everything"]}""", "include")]
    [InlineData("""{"input": "hi", "top_logprobs": 21}""", "top_logprobs")]
    [InlineData("""{"input": "hi", "temperature": "hot"}""", "temperature")]
    [InlineData("""{"input": "hi", "reasoning": "x"}""", "reasoning")]
    [InlineData("""{"input": "hi", "reasoning": {"effort": "extreme"}}""", "reasoning.effort")]
    [InlineData("""{"input": "hi", "text": {"verbosity": "x"}}""", "text.verbosity")]
    [InlineData("""{"input": "hi", "metadata": {"type": null}}""", "metadata")]
    public async Task BadRequestsAre400sNamingTheResponsesField(string body, string param)
    {
        using var response = await _server.Http.PostAsync("/v1/responses", RunningServer.Json(body));
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task OutputLogprobsListEveryTokenWholeAndStreamed()
    {
        var request = new Dictionary<string, object> { ["model"] = RunningServer.Model, ["input"] = "Hi", ["max_output_tokens"] = 6, ["temperature"] = 0, ["top_logprobs"] = 2 };
        var (_, whole) = await _server.PostAsync("/v1/responses", request);
        var logprobs = whole!["output"]![0]!["content"]![0]!["logprobs"]!.AsArray();
        Assert.Equal(whole["usage"]!["output_tokens"]!.GetValue<int>(), logprobs.Count);
        Assert.All(logprobs, token => Assert.Equal(2, token!["top_logprobs"]!.AsArray().Count));
        request["stream"] = true;
        var (response, events) = await _server.StreamAsync("/v1/responses", request);
        using (response)
        using (events)
        {
            var all = await events.ReadAllAsync();
            Assert.False(events.SawDone);   // the Responses stream ends without [DONE]
            var streamed = all.Where(e => e["type"]!.GetValue<string>() == "response.output_text.delta").SelectMany(e => e["logprobs"]!.AsArray());
            Assert.Equal(logprobs.Select(t => t!["token"]!.GetValue<string>()), streamed.Select(t => t!["token"]!.GetValue<string>()));
        }
    }
}

/// A background response cancelled while it generates (a server of its own, whose context leaves it time to): it is
/// cancelled at once, and its engine request is gone.
public sealed class BackgroundResponseCancelTests : IAsyncLifetime
{
    RunningServer _server = null!;

    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(["--hf-overrides", """{"max_position_embeddings": 4096}"""]);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task CancellingItStopsItsGeneration()
    {
        var responses = _server.OpenAI().GetResponsesClient();
        var (status, body) = await _server.PostAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello!", background = true, max_output_tokens = 2000, ignore_eos = true,
        });
        Assert.True(status == 200, body?.ToJsonString());
        var id = body!["id"]!.GetValue<string>();
        await ResponsesApiTests.PollAsync(responses, id, s => s == ResponseStatus.InProgress);
        // a response still generating cannot be continued
        var (continued, refusal) = await _server.PostAsync("/v1/responses", new { model = RunningServer.Model, input = "And?", previous_response_id = id });
        Assert.Equal(400, continued);
        Assert.Equal("previous_response_id", refusal!["error"]!["param"]!.GetValue<string>());
        ResponseResult cancelled = await responses.CancelResponseAsync(id);
        Assert.Equal(ResponseStatus.Cancelled, cancelled.Status);
        Assert.Equal(ResponseStatus.Cancelled, (await responses.GetResponseAsync(id)).Value.Status);
        Assert.Equal(ResponseStatus.Cancelled, (await responses.CancelResponseAsync(id)).Value.Status);   // again: the same answer
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);

        // deleted while it generates: it stops, and stays deleted
        var (_, second) = await _server.PostAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello!", background = true, max_output_tokens = 2000, ignore_eos = true,
        });
        var secondId = second!["id"]!.GetValue<string>();
        await ResponsesApiTests.PollAsync(responses, secondId, s => s == ResponseStatus.InProgress);
        Assert.True((await responses.DeleteResponseAsync(secondId)).Value.Deleted);
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
        Assert.Equal(404, (await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() => responses.GetResponseAsync(secondId))).Status);
    }

    /// A streamed background response cancelled while two readers stream it (the creating request and a GET from the
    /// start): both streams end, neither with a terminal event, and the response is stored cancelled.
    [Fact]
    public async Task CancellingAStreamedOneEndsItsStreams()
    {
        var responses = _server.OpenAI().GetResponsesClient();
        var (created, events) = await _server.StreamAsync("/v1/responses", new
        {
            model = RunningServer.Model, input = "Hello!", background = true, stream = true, max_output_tokens = 2000, ignore_eos = true,
        });
        using (created)
        using (events)
        {
            var first = (await events.NextAsync())!;
            Assert.Equal("response.created", first["type"]!.GetValue<string>());
            var id = first["response"]!["id"]!.GetValue<string>();
            while ((await events.NextAsync())!["type"]!.GetValue<string>() != "response.output_text.delta") { }
            var (again, replay) = await _server.StreamGetAsync($"/v1/responses/{id}?stream=true");
            using (again)
            using (replay)
            {
                Assert.Equal(0, (await replay.NextAsync())!["sequence_number"]!.GetValue<int>());
                Assert.Equal(ResponseStatus.Cancelled, (await responses.CancelResponseAsync(id)).Value.Status);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                foreach (var stream in new[] { events, replay })
                {
                    var rest = await stream.ReadAllAsync(timeout.Token);
                    Assert.DoesNotContain(rest, e => e["type"]!.GetValue<string>() is "response.completed" or "response.incomplete" or "response.failed");
                }
            }
            Assert.Equal(ResponseStatus.Cancelled, (await responses.GetResponseAsync(id)).Value.Status);
        }
        await _server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
    }

    [Fact]
    public async Task ABackgroundResponseTheStoreCannotHoldIsRefused()
    {
        await using var server = await RunningServer.StartAsync(["--max-stored-response-bytes", "100"]);
        var (status, body) = await server.PostAsync("/v1/responses", new { model = RunningServer.Model, input = "Hello!", background = true });
        Assert.Equal(400, status);
        Assert.Equal("store", body!["error"]!["param"]!.GetValue<string>());
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0);
    }
}
