using System.Globalization;
using System.Text.Json;
using Microsoft.Playwright;
using Serving.Server.Engine;
using Serving.Server.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace Serving.Server.Tests.Playground;

/// The playground page in headless Chromium against the real server, used as a person would: labelled controls,
/// the keyboard, what the page shows. Greedy answers of the tiny-gqa preset run to max_tokens (no early EOS).
public sealed class PlaygroundPageTests(PlaygroundFixture fixture) : IClassFixture<PlaygroundFixture>
{
    RunningServer Server => fixture.Server;

    [Fact]
    public async Task AChatAnswerStreamsIntoThePage()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Temperature", "0");
        await page.SetAsync("Max tokens", "400");

        // every change the page makes while the answer is still streaming is recorded as it happens (an observer set
        // before sending: polling from here could miss the whole stream when the browser reads it in one go)
        await page.Page.EvaluateAsync("""
            () => { window.partials = [];
                    new MutationObserver(() => { const m = document.querySelector('.msg.assistant');
                        if (m?.dataset.state === 'streaming') window.partials.push(m.querySelector('.msg-text').textContent); })
                      .observe(document.body, { subtree: true, childList: true, characterData: true }); }
            """);
        var request = await page.SendAsync("Hello there");

        Assert.True(request.GetProperty("stream").GetBoolean());
        Assert.Equal("Hello there", request.GetProperty("messages")[0].GetProperty("content").GetString());
        await page.WaitForAnswerAsync();
        var answer = await page.LastAnswer.Locator(".msg-text").TextContentAsync() ?? "";
        // part of the answer was on the page while the rest was still being generated, each part the start of the next
        var partials = (await page.Page.EvaluateAsync<string[]>("() => window.partials")).Where(text => text.Length > 0).ToArray();
        Assert.NotEmpty(partials);
        Assert.All(partials, partial => Assert.StartsWith(partial, answer));
        Assert.True(int.Parse(await page.LastAnswer.GetAttributeAsync("data-chunks") ?? "0", CultureInfo.InvariantCulture) > 1);
        await Expect(page.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("length");
        await Expect(page.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("400 tokens");
        await page.ScreenshotAsync("chat");
    }

    [Fact]
    public async Task StopAbortsALongGenerationAndTheEnginePanelShowsNothingRunning()
    {
        await using var page = await fixture.OpenAsync(width: 1440, height: 960);
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Temperature", "0");
        var maxTokens = PlaygroundFixture.ContextLength - 100;
        await page.SetAsync("Max tokens", maxTokens.ToString(CultureInfo.InvariantCulture));
        var generatedBefore = Server.Engine.GetStats().GenerationTokens;

        await page.SendAsync("Tell me a very long story");
        await Expect(page.EngineStat("running")).ToHaveTextAsync("1");
        await page.Page.WaitForFunctionAsync("() => document.querySelector('.msg.assistant .msg-text').textContent.length > 120");
        await page.ScreenshotAsync("playground", fullPage: true);   // mid-answer: the one in the server's docs
        await page.Page.GetByRole(AriaRole.Button, new() { Name = "Stop" }).ClickAsync();

        await page.WaitForAnswerAsync("stopped", 10_000);
        await Expect(page.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("stopped");
        await Expect(page.EngineStat("running")).ToHaveTextAsync("0");
        var stats = await Server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.KVUsage == 0);
        Assert.True(stats.GenerationTokens - generatedBefore < maxTokens, "the request ran to the end: Stop did not abort it");
        await Expect(page.SendButton).ToBeEnabledAsync();
    }

    [Fact]
    public async Task AThinkingAnswerShowsItsThinkingApartAndSendsItBack()
    {
        // deepseek_r1 over the fixture's ChatML template: an answer thinks from its first token, and the random
        // model never closes the thought, so the whole answer is thinking
        await using var thinking = await RunningServer.StartAsync(["--reasoning-parser", "deepseek_r1"]);
        await using var page = await fixture.OpenAsync(server: thinking);
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Temperature", "0");
        await page.SetAsync("Max tokens", "12");

        await page.SendAsync("Why?");
        await page.WaitForAnswerAsync();
        await Expect(page.LastAnswer.Locator(".msg-thinking")).ToBeVisibleAsync();
        var thought = await page.LastAnswer.Locator(".msg-thinking-text").TextContentAsync() ?? "";
        Assert.NotEmpty(thought);
        Assert.Equal("", await page.LastAnswer.Locator(".msg-text").TextContentAsync());
        await Expect(page.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("12 tokens");

        // the next turn sends the answer back with its thinking
        var request = await page.SendAsync("And then?");
        var answer = request.GetProperty("messages")[1];
        Assert.Equal("assistant", answer.GetProperty("role").GetString());
        Assert.Equal(thought, answer.GetProperty("reasoning").GetString());
        await page.WaitForAnswerAsync();
    }

    [Fact]
    public async Task AnAnswerWithoutThinkingShowsNoThinkingBlock()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Max tokens", "4");
        await page.SendAsync("Hi");
        await page.WaitForAnswerAsync();
        await Expect(page.LastAnswer.Locator(".msg-thinking")).ToBeHiddenAsync();
    }

    [Fact]
    public async Task SamplingSettingsReachTheRequest()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Temperature", "0.35");
        await page.SetAsync("Top p", "0.9");
        await page.SetAsync("Top k", "40");
        await page.SetAsync("Seed", "7");
        await page.SetAsync("Max tokens", "8");
        await page.SetAsync("Stop sequences", "###\n\\n\\n");

        var request = await page.SendAsync("Hi");

        Assert.Equal(0.35, request.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, request.GetProperty("top_p").GetDouble());
        Assert.Equal(40, request.GetProperty("top_k").GetInt32());
        Assert.Equal(7, request.GetProperty("seed").GetInt32());
        Assert.Equal(8, request.GetProperty("max_tokens").GetInt32());
        Assert.Equal(["###", "\n\n"], request.GetProperty("stop").EnumerateArray().Select(s => s.GetString()));
        await page.WaitForAnswerAsync();
    }

    /// A server with --speculative-config: once it has checked drafts, the engine panel shows the share kept; a server
    /// without shows no such line.
    [Fact]
    public async Task TheEnginePanelShowsTheDraftsKeptUnderSpeculativeDecoding()
    {
        await using var server = await RunningServer.StartAsync(["--speculative-config", """{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3, "prompt_lookup_min": 1}"""]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        await Expect(page.Page.Locator("#drafts-kept-fact")).ToBeHiddenAsync();
        await page.SetAsync("Temperature", "0");
        await page.SetAsync("Max tokens", "48");
        await page.SendAsync("one two three one two three one two three one two");
        await page.WaitForAnswerAsync();
        var stats = await server.WaitForStatsAsync(s => s.Speculation.NumDraftTokens > 0);
        await Expect(page.EngineStat("drafts-kept")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+\.\d% of \d+$"));
        Assert.True(stats.Speculation.NumAcceptedTokens > 0, "no draft was kept");

        await using var plain = await fixture.OpenAsync();
        await plain.WaitUntilConnectedAsync();
        await Expect(plain.EngineStat("running")).ToHaveTextAsync("0");
        await Expect(plain.Page.Locator("#drafts-kept-fact")).ToBeHiddenAsync();
    }

    /// An embedding server (--runner pooling) chats with nobody: the page says what it serves and offers no message box.
    [Fact]
    public async Task AnEmbeddingServerIsShownAsOneAndOffersNoChat()
    {
        using var lora = LoraFixture.Create("llama-gqa");
        await using var server = await RunningServer.StartAsync(["--runner", "pooling", "--enable-lora", "--lora-modules", $"tuned={lora.Adapter.Path}"]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        await Expect(page.Notice).ToContainTextAsync("This server runs the pooling runner (--runner pooling).");
        await Expect(page.SendButton).ToBeHiddenAsync();
        await Expect(page.Composer).ToBeHiddenAsync();
        await page.Page.GetByLabel("Model", new() { Exact = true }).SelectOptionAsync("tuned");   // picking an adapter brings no chat
        await Expect(page.SendButton).ToBeHiddenAsync();
        await Expect(page.EngineStat("running")).ToHaveTextAsync("0");

        await using var plain = await fixture.OpenAsync();
        await plain.WaitUntilConnectedAsync();
        await Expect(plain.Notice).ToBeHiddenAsync();
        await Expect(plain.SendButton).ToBeEnabledAsync();
    }

    /// An embedding server's form sends one or two texts to /v1/embeddings and shows what the API answers: the
    /// vectors' size and the two texts' cosine similarity, as computed from the API's own answer.
    [Fact]
    public async Task AnEmbeddingServerEmbedsTwoTextsFromItsForm()
    {
        string[] texts = ["The cat sat on the mat.", "A dog slept on the rug."];
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        await Expect(page.Page.GetByRole(AriaRole.Heading, new() { Name = "Embeddings" })).ToBeVisibleAsync();
        await page.SetAsync("Text", texts[0]);
        await page.SetAsync("Second text (optional: their cosine similarity)", texts[1]);
        var request = await page.Page.RunAndWaitForRequestAsync(
            () => page.Page.GetByRole(AriaRole.Button, new() { Name = "Embed", Exact = true }).ClickAsync(),
            r => r.Method == "POST" && r.Url.EndsWith("/v1/embeddings", StringComparison.Ordinal));
        var sent = request.PostDataJSON()!.Value;
        Assert.Equal(texts, sent.GetProperty("input").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(RunningServer.Model, sent.GetProperty("model").GetString());

        var (status, body) = await server.PostAsync("/v1/embeddings", new { model = RunningServer.Model, input = texts });
        Assert.Equal(200, status);
        var vectors = body!["data"]!.AsArray().Select(d => d!["embedding"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray()).ToArray();
        var cosine = vectors[0].Zip(vectors[1], (a, b) => a * b).Sum()
            / Math.Sqrt(vectors[0].Sum(a => a * a) * vectors[1].Sum(b => b * b));
        ILocator Field(string name) => page.Page.Locator($"#embed-result [data-embed={name}]");
        await Expect(Field("dimensions")).ToHaveTextAsync(vectors[0].Length.ToString(CultureInfo.InvariantCulture));
        await Expect(Field("cosine")).ToHaveTextAsync(cosine.ToString("F4", CultureInfo.InvariantCulture));
        await Expect(Field("tokens")).ToHaveTextAsync(body["usage"]!["prompt_tokens"]!.ToString());
        await Expect(page.Page.Locator("#pooling-error")).ToBeHiddenAsync();
        await page.ScreenshotAsync("playground-embeddings");

        // a generating server shows no such form
        await using var plain = await fixture.OpenAsync();
        await plain.WaitUntilConnectedAsync();
        await Expect(plain.Page.Locator("#pooling-form")).ToBeHiddenAsync();
        await Expect(plain.Page.Locator("#rerank-form")).ToBeHiddenAsync();
    }

    /// A server that scores pairs (here an embedding model: cosine similarity) also offers a rerank form: a query and
    /// documents, one a line, to /v1/rerank, the documents shown in the API's order with its scores.
    [Fact]
    public async Task AnEmbeddingServerReranksDocumentsFromItsForm()
    {
        const string Query = "Where did the cat sleep?";
        string[] documents = ["The cat sat on the mat.", "Stock prices fell sharply.", "A kitten napped on the rug."];
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        await Expect(page.Page.GetByRole(AriaRole.Heading, new() { Name = "Rerank" })).ToBeVisibleAsync();
        await page.SetAsync("Query", Query);
        await page.SetAsync("Documents (one a line)", string.Join('\n', documents));
        var request = await page.Page.RunAndWaitForRequestAsync(
            () => page.Page.GetByRole(AriaRole.Button, new() { Name = "Rerank", Exact = true }).ClickAsync(),
            r => r.Method == "POST" && r.Url.EndsWith("/v1/rerank", StringComparison.Ordinal));
        var sent = request.PostDataJSON()!.Value;
        Assert.Equal(Query, sent.GetProperty("query").GetString());
        Assert.Equal(documents, sent.GetProperty("documents").EnumerateArray().Select(d => d.GetString()));

        var (status, body) = await server.PostAsync("/v1/rerank", new { model = RunningServer.Model, query = Query, documents });
        Assert.Equal(200, status);
        var ranked = body!["results"]!.AsArray()
            .Select(r => r!["relevance_score"]!.GetValue<double>().ToString("F4", CultureInfo.InvariantCulture) + r["document"]!["text"]!.GetValue<string>());
        await Expect(page.Page.Locator("#rerank-result li")).ToHaveTextAsync(ranked.ToArray());
        await Expect(page.Page.Locator("#rerank-error")).ToBeHiddenAsync();
        await page.ScreenshotAsync("playground-rerank");
    }

    /// A sequence classifier's server (its model card lists the labels) gets the form as a classifier: one text to
    /// /v1/classify, the labels shown by probability as the API answers them.
    [Fact]
    public async Task AClassifierServerClassifiesATextFromItsForm()
    {
        string[] labels = ["negative", "neutral", "positive"];
        using var classifier = ClassifierFixture.Create("llama-gqa", labels);
        await using var server = await RunningServer.StartAsync([], model: classifier.Folder.Path);
        await using var page = await fixture.OpenAsync(server: server);
        await Expect(page.Notice).ToContainTextAsync("It answers POST /v1/classify");
        await Expect(page.Page.GetByRole(AriaRole.Heading, new() { Name = "Classification" })).ToBeVisibleAsync();
        await Expect(page.Page.GetByLabel("Second text (optional: their cosine similarity)")).ToBeHiddenAsync();
        await Expect(page.Page.Locator("#rerank-form")).ToBeHiddenAsync();   // three labels: not a cross-encoder
        await page.SetAsync("Text", "What a wonderful day");
        var request = await page.Page.RunAndWaitForRequestAsync(
            () => page.Page.GetByRole(AriaRole.Button, new() { Name = "Classify", Exact = true }).ClickAsync(),
            r => r.Method == "POST" && r.Url.EndsWith("/v1/classify", StringComparison.Ordinal));
        Assert.Equal("What a wonderful day", request.PostDataJSON()!.Value.GetProperty("input").GetString());

        var (status, body) = await server.PostAsync("/v1/classify", new { model = RunningServer.Model, input = "What a wonderful day" });
        Assert.Equal(200, status);
        var probs = body!["data"]![0]!["probs"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
        var ranked = labels.Zip(probs).OrderByDescending(x => x.Second).ToArray();
        var result = page.Page.Locator("#classify-result");
        await Expect(result.Locator("dt")).ToHaveTextAsync(ranked.Select(x => x.First).ToArray());
        await Expect(result.Locator("dd")).ToHaveTextAsync(ranked.Select(x => (100 * x.Second).ToString("F1", CultureInfo.InvariantCulture) + "%").ToArray());
        await page.ScreenshotAsync("playground-classify");
    }

    [Fact]
    public async Task ALoraAdapterIsPickedAndSentAsTheModel()
    {
        using var lora = LoraFixture.Create("llama-gqa");
        await using var server = await RunningServer.StartAsync(["--enable-lora", "--lora-modules", $"tuned={lora.Adapter.Path}"]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        var picker = page.Page.GetByLabel("Model", new() { Exact = true });
        await Expect(picker).ToBeVisibleAsync();
        await Expect(picker.Locator("option")).ToHaveTextAsync([RunningServer.Model, $"tuned (LoRA of {RunningServer.Model})"]);
        await picker.SelectOptionAsync("tuned");
        await page.SetAsync("Max tokens", "4");
        var request = await page.SendAsync("Hi");
        Assert.Equal("tuned", request.GetProperty("model").GetString());
        await page.WaitForAnswerAsync();

        // a server without adapters shows no picker
        await using var plain = await fixture.OpenAsync();
        await plain.WaitUntilConnectedAsync();
        await Expect(plain.Page.Locator("#model-pick")).ToBeHiddenAsync();
    }

    [Fact]
    public async Task TheModelPanelAndTheGqaPictureShowTheServedModel()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        var info = Server.Engine.Info;
        var panel = page.Page.Locator("#model-panel");
        await panel.Locator("summary").ClickAsync();   // open by default: this closes it ...
        await Expect(page.ModelFact("kv-heads")).ToBeHiddenAsync();
        await panel.Locator("summary").ClickAsync();   // ... and this opens it again

        await Expect(page.ModelFact("kv-heads")).ToHaveTextAsync(info.NumKeyValueHeads.ToString(CultureInfo.InvariantCulture));
        await Expect(page.ModelFact("query-heads")).ToHaveTextAsync(info.NumAttentionHeads.ToString(CultureInfo.InvariantCulture));
        await Expect(page.ModelFact("kv-bytes-per-token")).ToHaveTextAsync("1 KiB");   // 2 x 2 layers x 2 heads x 32 x 4 bytes
        await Expect(page.ModelFact("kv-cache-dtype")).ToHaveTextAsync(info.KVCacheDtype);
        // one box per query head and per KV head, one line per query head to its KV head
        var picture = page.Page.Locator("#gqa-picture svg");
        await Expect(picture.Locator("rect")).ToHaveCountAsync(info.NumAttentionHeads + info.NumKeyValueHeads);
        await Expect(picture.Locator("line")).ToHaveCountAsync(info.NumAttentionHeads);
        var mhaCapacity = info.KVCapacityTokens * info.NumKeyValueHeads / info.NumAttentionHeads;
        await Expect(page.Page.Locator("#gqa-summary")).ToContainTextAsync(string.Format(CultureInfo.InvariantCulture,
            "holds {0:N0} tokens instead of {1:N0}", info.KVCapacityTokens, mhaCapacity));
        await Expect(page.Page.Locator("#gqa-bytes")).ToContainTextAsync("4 KiB / token");
    }

    [Fact]
    public async Task AMissingOrWrongApiKeyGetsAClearMessage()
    {
        await using var page = await fixture.OpenAsync(apiKey: null);
        await Expect(page.Notice).ToContainTextAsync("This server requires an API key");
        await Expect(page.SendButton).ToBeDisabledAsync();

        await page.UseKeyAsync("not-the-key");
        await Expect(page.Notice).ToContainTextAsync("The server rejected this API key");
        await Expect(page.SendButton).ToBeDisabledAsync();

        await page.UseKeyAsync(RunningServer.ApiKey);
        await page.WaitUntilConnectedAsync();
        await Expect(page.Notice).ToBeHiddenAsync();
        await Expect(page.EngineStat("running")).ToHaveTextAsync("0");
    }

    [Fact]
    public async Task ARefusedRequestShowsTheServersErrorAndGivesTheMessageBack()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Max tokens", "100000");

        await page.SendAsync("Hello");

        await Expect(page.Error).ToContainTextAsync("400 Bad Request");
        await Expect(page.Error).ToContainTextAsync("param: max_tokens");
        await Expect(page.Error).ToContainTextAsync($"maximum context length is {PlaygroundFixture.ContextLength} tokens");
        await Expect(page.Composer).ToHaveValueAsync("Hello");
        await Expect(page.Page.Locator("#transcript-chat .msg")).ToHaveCountAsync(0);
        await page.ScreenshotAsync("refused");
    }

    [Fact]
    public async Task AnErrorAfterTheAnswerBeganKeepsWhatArrivedAndSaysWhatFailed()
    {
        await using var faulting = await RunningServer.StartAsync(model: PlaygroundFixture.Model,
            engineFactory: (options, logs) => new FaultingEngine(DefaultEngine.Create(options, logs)));
        await using var page = await fixture.OpenAsync(server: faulting);
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Temperature", "0");

        await page.SendAsync("Hello there");

        await page.WaitForAnswerAsync("error");
        Assert.NotEqual("", await page.LastAnswer.Locator(".msg-text").TextContentAsync());
        await Expect(page.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("error");
        await Expect(page.Error).ToContainTextAsync("The answer failed");
        await Expect(page.Composer).ToHaveValueAsync("");
        await Expect(page.SendButton).ToBeEnabledAsync();
        await page.ScreenshotAsync("stream-error");
    }

    [Fact]
    public async Task StructuredOutputAndToolsAreSentAsOpenaiFieldsAndTheAnswerIsShown()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.SetAsync("Max tokens", "16");
        await page.Page.GetByText("Structured output & tools").ClickAsync();
        await page.Page.GetByLabel("Response format").SelectOptionAsync("json_schema");
        await page.Page.GetByRole(AriaRole.Button, new() { Name = "Insert an example tool" }).ClickAsync();
        await page.Page.GetByLabel("Tool choice").SelectOptionAsync("required");

        var responseTask = page.Page.WaitForResponseAsync(r => r.Url.EndsWith("/v1/chat/completions", StringComparison.Ordinal));
        var request = await page.SendAsync("What is the weather in Paris?");
        var response = await responseTask;

        var format = request.GetProperty("response_format");
        Assert.Equal("json_schema", format.GetProperty("type").GetString());
        Assert.Equal("object", format.GetProperty("json_schema").GetProperty("schema").GetProperty("type").GetString());
        Assert.Equal("get_weather", request.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("required", request.GetProperty("tool_choice").GetString());
        // whichever way this server answers, the page shows it: its refusal, or the answer
        if (response.Status == 200)
        {
            await page.WaitForAnswerAsync();
        }
        else
        {
            var message = JsonDocument.Parse(await response.TextAsync()).RootElement.GetProperty("error").GetProperty("message").GetString()!;
            await Expect(page.Error).ToContainTextAsync($"{response.Status} Bad Request");
            await Expect(page.Error).ToContainTextAsync(message);
        }
        await page.ScreenshotAsync("structured");
    }

    [Fact]
    public async Task CompletionModeWithTheTokenViewShowsLogprobsOnHover()
    {
        await using var page = await fixture.OpenAsync();
        await page.WaitUntilConnectedAsync();
        await page.Page.GetByLabel("Completion", new() { Exact = true }).CheckAsync();
        await page.Page.GetByLabel("Tokens & logprobs", new() { Exact = true }).CheckAsync();
        await page.SetAsync("Top alternatives per token", "3");
        await page.SetAsync("Max tokens", "24");

        var prompt = page.Page.GetByRole(AriaRole.Textbox, new() { Name = "Prompt", Exact = true });
        await prompt.FillAsync("Once upon a time");
        var request = (await page.Page.RunAndWaitForRequestAsync(() => prompt.PressAsync("Enter"), "**/v1/completions")).PostDataJSON()!.Value;
        Assert.Equal("Once upon a time", request.GetProperty("prompt").GetString());
        Assert.Equal(3, request.GetProperty("logprobs").GetInt32());
        await page.WaitForAnswerAsync();

        var tokens = page.LastAnswer.Locator(".tok");
        await Expect(tokens).ToHaveCountAsync(24);
        await tokens.Nth(2).HoverAsync();
        var tip = page.Page.GetByRole(AriaRole.Tooltip);
        await Expect(tip).ToBeVisibleAsync();
        await Expect(tip).ToContainTextAsync("logprob");
        // up to 3 alternatives: completions-style logprobs key them by text, so two that decode alike are one
        var alternatives = await tip.Locator("tbody tr").CountAsync();
        Assert.InRange(alternatives, 1, 3);
        await page.ScreenshotAsync("tokens");
    }

    /// A server started with --return-tokens-as-token-ids names tokens by id unless asked otherwise: the page asks for
    /// their text, so its token view still shows the answer's words.
    [Fact]
    public async Task TheTokenViewShowsTextUnderTheServersTokenIdsFlag()
    {
        await using var server = await RunningServer.StartAsync(["--return-tokens-as-token-ids"]);
        await using var page = await fixture.OpenAsync(server: server);
        await page.WaitUntilConnectedAsync();
        await page.Page.GetByLabel("Tokens & logprobs", new() { Exact = true }).CheckAsync();
        await page.SetAsync("Max tokens", "8");
        var request = await page.SendAsync("Hi");
        Assert.False(request.GetProperty("return_tokens_as_token_ids").GetBoolean());
        await page.WaitForAnswerAsync();
        var tokens = page.LastAnswer.Locator(".tok");
        await Expect(tokens).ToHaveCountAsync(8);
        Assert.DoesNotContain("token_id:", await page.LastAnswer.InnerTextAsync());
    }

    [Fact]
    public async Task ThePageFitsANarrowWindowAndWorksFromTheKeyboard()
    {
        await using var page = await fixture.OpenAsync(width: 380, height: 800);
        await page.WaitUntilConnectedAsync();
        Assert.True(await page.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the page scrolls sideways at 380 px");

        await page.Page.ReloadAsync();                     // the key stays for the tab's session
        await page.WaitUntilConnectedAsync();
        await page.Page.Keyboard.PressAsync("Tab");        // the skip link comes first ...
        await page.Page.Keyboard.PressAsync("Enter");      // ... and leads to the message box
        await Expect(page.Composer).ToBeFocusedAsync();
        await page.Page.Keyboard.TypeAsync("Hi");
        await page.Page.Keyboard.PressAsync("Enter");
        await page.WaitForAnswerAsync();
        Assert.True(await page.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the page scrolls sideways at 380 px once it shows an answer");
        await page.ScreenshotAsync("narrow", fullPage: true);
    }
}
