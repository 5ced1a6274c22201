using System.ClientModel;
using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.Extensions.AI;
using Serving.Engine;
using OpenAI.Embeddings;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Pooling;

/// /v1/embeddings and gRPC Embed through the real server started with --runner pooling, reached by the official
/// OpenAI SDK (which asks for base64 by default), Microsoft.Extensions.AI, raw HTTP and Grpc.Net.Client: every
/// form of input gives the vector the engine pools for its tokens, and what is wrong is a 4xx naming the field.
public sealed class EmbeddingsServerTests
{
    static readonly string[] Texts = ["The quick brown fox", "jumps over", "the lazy dog."];

    [Fact]
    public async Task TheOpenAiSdkAndMicrosoftExtensionsAiGetTheEnginesVectors()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        var client = server.OpenAI().GetEmbeddingClient(RunningServer.Model);
        var expected = new List<float[]>();
        var tokens = 0;
        foreach (var text in Texts)
        {
            var ids = server.Engine.Prompts.Encode(text);
            tokens += ids.Count;
            expected.Add((await server.Engine.EmbedAsync(new Serving.Engine.GenerationRequest
            {
                RequestId = Guid.NewGuid().ToString("N"), PromptTokenIds = ids, Pooling = server.Engine.Info.Pooler!.Params(),
            }, default)).Embedding);
        }

        var one = await client.GenerateEmbeddingAsync(Texts[0]);
        AssertClose(expected[0], one.Value.ToFloats().ToArray());
        Assert.Equal(1.0, Math.Sqrt(one.Value.ToFloats().ToArray().Sum(v => (double)v * v)), 1e-5);   // LAST, normalized: the default

        var batch = await client.GenerateEmbeddingsAsync(Texts);
        Assert.Equal(Texts.Length, batch.Value.Count);
        for (var i = 0; i < Texts.Length; i++)
        {
            Assert.Equal(i, batch.Value[i].Index);
            AssertClose(expected[i], batch.Value[i].ToFloats().ToArray());
        }
        Assert.Equal(tokens, batch.Value.Usage.InputTokenCount);
        Assert.Equal(tokens, batch.Value.Usage.TotalTokenCount);

        var ids0 = server.Engine.Prompts.Encode(Texts[0]).ToArray();
        var byIds = await client.GenerateEmbeddingsAsync([new ReadOnlyMemory<int>(ids0)]);
        AssertClose(expected[0], byIds.Value[0].ToFloats().ToArray());

        IEmbeddingGenerator<string, Embedding<float>> generator = client.AsIEmbeddingGenerator();
        var generated = await generator.GenerateAsync(Texts);
        for (var i = 0; i < Texts.Length; i++) AssertClose(expected[i], generated[i].Vector.ToArray());
    }

    [Fact]
    public async Task RawHttpTakesFloatsTokenIdsAndChatMessages()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        var (status, body) = await server.PostAsync("/v1/embeddings", new { model = RunningServer.Model, input = Texts, encoding_format = "float" });
        Assert.Equal(200, status);
        Assert.Equal("list", body!["object"]!.GetValue<string>());
        Assert.StartsWith("embd-", body["id"]!.GetValue<string>());
        Assert.Equal(RunningServer.Model, body["model"]!.GetValue<string>());
        var data = body["data"]!.AsArray();
        Assert.Equal(Texts.Length, data.Count);
        Assert.All(data, (item, i) =>
        {
            Assert.Equal("embedding", item!["object"]!.GetValue<string>());
            Assert.Equal(i, item["index"]!.GetValue<int>());
            Assert.Equal(server.Engine.Info.HiddenSize, item["embedding"]!.AsArray().Count);
        });
        var floats = Floats(data[0]!["embedding"]!);

        var (_, base64) = await server.PostAsync("/v1/embeddings", new { input = Texts[0], encoding_format = "base64" });
        var bytes = Convert.FromBase64String(base64!["data"]![0]!["embedding"]!.GetValue<string>());
        Assert.Equal(floats, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
        // vLLM's embed_dtype and endianness: bfloat16, big-endian, each value the nearest of the float's
        var (_, bf16) = await server.PostAsync("/v1/embeddings", new { input = Texts[0], encoding_format = "base64", embed_dtype = "bfloat16", endianness = "big" });
        var halves = Convert.FromBase64String(bf16!["data"]![0]!["embedding"]!.GetValue<string>());
        Assert.Equal(floats.Length * 2, halves.Length);
        Assert.All(floats, (value, i) =>
        {
            var decoded = BitConverter.UInt32BitsToSingle((uint)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(halves.AsSpan(2 * i)) << 16);
            Assert.True(Math.Abs(decoded - value) <= Math.Abs(value) / 256, $"{i}: {value} as {decoded}");
        });

        var ids = server.Engine.Prompts.Encode(Texts[0]);
        var (_, byIds) = await server.PostAsync("/v1/embeddings", new { input = new[] { ids }, encoding_format = "float" });
        AssertClose(floats, Floats(byIds!["data"]![0]!["embedding"]!));

        // vLLM's chat form: the conversation rendered by the template, no generation prompt unless asked
        var messages = new[] { new { role = "user", content = "Hello there" } };
        var (_, rendered) = await server.PostAsync("/tokenize", new { messages, add_generation_prompt = false });
        var renderedIds = rendered!["tokens"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
        var (chatStatus, chat) = await server.PostAsync("/v1/embeddings", new { messages, encoding_format = "float" });
        Assert.Equal(200, chatStatus);
        var (_, chatIds) = await server.PostAsync("/v1/embeddings", new { input = renderedIds, encoding_format = "float" });
        AssertClose(Floats(chatIds!["data"]![0]!["embedding"]!), Floats(chat!["data"]![0]!["embedding"]!));
        Assert.Equal(renderedIds.Length, chat["usage"]!["prompt_tokens"]!.GetValue<int>());

        // truncate_prompt_tokens keeps the last tokens; normalize false gives the raw hidden state
        var (_, truncated) = await server.PostAsync("/v1/embeddings", new { input = ids, truncate_prompt_tokens = 2, encoding_format = "float" });
        var (_, lastTwo) = await server.PostAsync("/v1/embeddings", new { input = ids.Skip(ids.Count - 2).ToArray(), encoding_format = "float" });
        AssertClose(Floats(lastTwo!["data"]![0]!["embedding"]!), Floats(truncated!["data"]![0]!["embedding"]!));
        var (_, raw) = await server.PostAsync("/v1/embeddings", new { input = Texts[0], normalize = false, encoding_format = "float" });
        var rawValues = Floats(raw!["data"]![0]!["embedding"]!);
        var norm = Math.Sqrt(rawValues.Sum(v => (double)v * v));
        AssertClose(floats, rawValues.Select(v => (float)(v / norm)).ToArray());

        var metrics = await server.Http.GetStringAsync("/metrics");
        Assert.Contains("gen_ai_operation_name=\"embeddings\"", metrics);
    }

    [Fact]
    public async Task BadRequestsAreFourHundredsNamingTheField()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling", "--max-model-len", "24"]);
        async Task Refused(object body, string param, string words, int status = 400)
        {
            var (code, error) = await server.PostAsync("/v1/embeddings", body);
            Assert.Equal(status, code);
            Assert.Equal(param, error!["error"]!["param"]?.GetValue<string>());
            Assert.Contains(words, error["error"]!["message"]!.GetValue<string>());
        }
        await Refused(new { input = Array.Empty<string>() }, "input", "must not be empty");
        await Refused(new { input = "", add_special_tokens = false }, "input", "must not be empty");
        await Refused(new { model = RunningServer.Model }, "input", "Exactly one of input and messages");
        await Refused(new { input = "a", messages = new[] { new { role = "user", content = "b" } } }, "input", "Exactly one of input and messages");
        await Refused(new { input = new[] { 1, 999999 } }, "input", "vocabulary");
        await Refused(new { input = "a", encoding_format = "hex" }, "encoding_format", "float");
        await Refused(new { input = "a", encoding_format = "base64", embed_dtype = "int8" }, "embed_dtype", "fp8_e4m3");
        await Refused(new { input = "a", encoding_format = "base64", endianness = "middle" }, "endianness", "native");
        await Refused(new { input = "a", dimensions = 8 }, "dimensions", "matryoshka");
        await Refused(new { input = Enumerable.Range(3, 25).ToArray() }, "input", "maximum context length is 24 tokens");
        var (okStatus, _) = await server.PostAsync("/v1/embeddings", new { input = Enumerable.Range(3, 24).ToArray() });
        Assert.Equal(200, okStatus);   // an embedding's prompt may fill the context
        var longChat = new[] { new { role = "user", content = string.Join(" ", Enumerable.Repeat("many words here", 12)) } };
        await Refused(new { messages = longChat }, "messages", "maximum context length is 24 tokens");
        var grpcLong = await Assert.ThrowsAsync<RpcException>(() => server.Grpc().EmbedAsync(new EmbedRequest
        {
            Inputs = { new EmbedInput { Text = "short" }, new EmbedInput { TokenIds = new TokenIds { Ids = { Enumerable.Range(3, 25) } } } },
        }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, grpcLong.StatusCode);
        Assert.Equal("inputs[1]", grpcLong.Trailers.GetValue("error-param"));
        var grpcEmptyChat = await Assert.ThrowsAsync<RpcException>(() => server.Grpc().EmbedAsync(new EmbedRequest
        {
            Inputs = { new EmbedInput { Text = "short" }, new EmbedInput { Chat = new ChatInput() } },
        }).ResponseAsync);
        Assert.Equal("inputs[1].chat.messages", grpcEmptyChat.Trailers.GetValue("error-param"));
        // scoring's spellings one at a time, rerank's documents a list
        var (both, bothError) = await server.PostAsync("/score", new { text_1 = "a", text_2 = "b", queries = "c" });
        Assert.Equal(400, both);
        Assert.Equal("queries", bothError!["error"]!["param"]!.GetValue<string>());
        var (mixed, mixedError) = await server.PostAsync("/score", new { queries = "a", items = new[] { "b" }, documents = new[] { "c" } });
        Assert.Equal(400, mixed);
        Assert.Equal("documents", mixedError!["error"]!["param"]!.GetValue<string>());
        var (single, singleError) = await server.PostAsync("/rerank", new { query = "a", documents = "b" });
        Assert.Equal(400, single);
        Assert.Equal("documents", singleError!["error"]!["param"]!.GetValue<string>());
        var (missing, notFound) = await server.PostAsync("/v1/embeddings", new { model = "other", input = "a" });
        Assert.Equal(404, missing);
        Assert.Equal("model_not_found", notFound!["error"]!["code"]!.GetValue<string>());

        // the pooling runner serves no generation, and says how to get it
        var (completion, refusal) = await server.PostAsync("/v1/completions", new { prompt = "a", max_tokens = 2 });
        Assert.Equal(400, completion);
        Assert.Contains("--runner pooling", refusal!["error"]!["message"]!.GetValue<string>());
        var (chat, _) = await server.PostAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "a" } } });
        Assert.Equal(400, chat);
        var sdk = await Assert.ThrowsAsync<ClientResultException>(() => server.OpenAI().GetChatClient(RunningServer.Model).CompleteChatAsync("hi"));
        Assert.Equal(400, sdk.Status);

        await using var generating = await RunningServer.StartAsync();
        var (embeddings, notPooling) = await generating.PostAsync("/v1/embeddings", new { input = "a" });
        Assert.Equal(400, embeddings);
        Assert.Contains("--runner pooling", notPooling!["error"]!["message"]!.GetValue<string>());
        await Assert.ThrowsAsync<ClientResultException>(() => generating.OpenAI().GetEmbeddingClient(RunningServer.Model).GenerateEmbeddingAsync("a"));
    }

    [Fact]
    public async Task ScoreAndRerankGiveTheCosineOfTheEmbeddings()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        var (_, embedded) = await server.PostAsync("/v1/embeddings", new { input = Texts, encoding_format = "float" });
        var vectors = embedded!["data"]!.AsArray().Select(item => Floats(item!["embedding"]!)).ToArray();
        double Cosine(int a, int b) => vectors[a].Zip(vectors[b], (x, y) => (double)x * y).Sum();   // unit vectors

        var (status, score) = await server.PostAsync("/v1/score", new { model = RunningServer.Model, text_1 = Texts[0], text_2 = Texts });
        Assert.Equal(200, status);
        Assert.Equal("list", score!["object"]!.GetValue<string>());
        var scores = score["data"]!.AsArray();
        Assert.Equal(Texts.Length, scores.Count);
        for (var i = 0; i < Texts.Length; i++)
        {
            Assert.Equal("score", scores[i]!["object"]!.GetValue<string>());
            Assert.Equal(Cosine(0, i), scores[i]!["score"]!.GetValue<double>(), 1e-5);
        }
        Assert.Equal(1.0, scores[0]!["score"]!.GetValue<double>(), 1e-5);   // a text against itself
        // usage as vLLM counts it: each pair's tokens (the query once per document), though each text is embedded once
        var tokens = Texts.Select(t => server.Engine.Prompts.Encode(t).Count).ToArray();
        Assert.Equal(Texts.Length * tokens[0] + tokens.Sum(), score["usage"]!["prompt_tokens"]!.GetValue<int>());
        var (_, pairs) = await server.PostAsync("/score", new { text_1 = new[] { Texts[1], Texts[2] }, text_2 = new[] { Texts[0], Texts[1] } });
        Assert.Equal(Cosine(1, 0), pairs!["data"]![0]!["score"]!.GetValue<double>(), 1e-5);
        Assert.Equal(Cosine(2, 1), pairs["data"]![1]!["score"]!.GetValue<double>(), 1e-5);
        // vLLM's other spellings of the two sides
        var (_, aliased) = await server.PostAsync("/score", new { queries = Texts[1], documents = new[] { Texts[0], Texts[2] } });
        Assert.Equal(Cosine(1, 2), aliased!["data"]![1]!["score"]!.GetValue<double>(), 1e-5);
        var (_, data) = await server.PostAsync("/score", new { data_1 = Texts[2], data_2 = Texts[0] });
        Assert.Equal(Cosine(2, 0), data!["data"]![0]!["score"]!.GetValue<double>(), 1e-5);

        // Cohere's documents may be {"text": ...} objects; results come best first, top_n of them
        var (rerankStatus, rerank) = await server.PostAsync("/v1/rerank", new
        {
            query = Texts[1], documents = new object[] { Texts[0], new { text = Texts[1] }, Texts[2] }, top_n = 2,
        });
        Assert.Equal(200, rerankStatus);
        var results = rerank!["results"]!.AsArray();
        Assert.Equal(2, results.Count);
        Assert.Equal(1, results[0]!["index"]!.GetValue<int>());
        Assert.Equal(Texts[1], results[0]!["document"]!["text"]!.GetValue<string>());
        var expectedSecond = Cosine(1, 0) >= Cosine(1, 2) ? 0 : 2;
        Assert.Equal(expectedSecond, results[1]!["index"]!.GetValue<int>());
        Assert.Equal(Cosine(1, expectedSecond), results[1]!["relevance_score"]!.GetValue<double>(), 1e-5);
        Assert.Equal(3 * tokens[1] + tokens.Sum(), rerank["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.Equal(3 * tokens[1] + tokens.Sum(), rerank["usage"]!["prompt_tokens"]!.GetValue<int>());
        var (_, all) = await server.PostAsync("/v2/rerank", new { query = Texts[1], documents = Texts });
        Assert.Equal(3, all!["results"]!.AsArray().Count);
        var (_, negative) = await server.PostAsync("/rerank", new { query = Texts[1], documents = Texts, top_n = -1 });
        Assert.Equal(3, negative!["results"]!.AsArray().Count);   // vLLM: top_n <= 0 is every document

        async Task Refused(string path, object body, string param)
        {
            var (code, error) = await server.PostAsync(path, body);
            Assert.Equal(400, code);
            Assert.Equal(param, error!["error"]!["param"]?.GetValue<string>());
        }
        await Refused("/score", new { text_1 = new[] { "a", "b" }, text_2 = new[] { "a", "b", "c" } }, "text_1");
        await Refused("/score", new { text_1 = "a" }, "text_2");
        await Refused("/rerank", new { query = "a", documents = Array.Empty<string>() }, "documents");
        await Refused("/rerank", new { documents = new[] { "a" } }, "query");
        await Refused("/rerank", new { query = "a", documents = new[] { "a", "" } }, "documents[1]");
        await Refused("/score", new { queries = new[] { "a", "b" }, documents = new[] { "c" } }, "queries");

        await using var generating = await RunningServer.StartAsync();
        var (generateStatus, refusal) = await generating.PostAsync("/v1/rerank", new { query = "a", documents = new[] { "b" } });
        Assert.Equal(400, generateStatus);
        Assert.Contains("--runner pooling", refusal!["error"]!["message"]!.GetValue<string>());
    }

    /// LangChain sends a thousand texts at a time: a request may list more inputs than the waiting queue holds (they
    /// are queued in waves), up to OpenAI's 2,048.
    [Fact]
    public async Task ARequestMayListMoreInputsThanTheQueueHolds()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling", "--max-num-queued-reqs", "8"]);
        var texts = Enumerable.Range(0, 30).Select(i => $"text number {i}").ToArray();
        var batch = await server.OpenAI().GetEmbeddingClient(RunningServer.Model).GenerateEmbeddingsAsync(texts);
        Assert.Equal(texts.Length, batch.Value.Count);
        foreach (var i in new[] { 0, 13, 29 })
        {
            var one = await server.OpenAI().GetEmbeddingClient(RunningServer.Model).GenerateEmbeddingAsync(texts[i]);
            AssertClose(one.Value.ToFloats().ToArray(), batch.Value[i].ToFloats().ToArray());
        }
        var (status, error) = await server.PostAsync("/v1/embeddings", new { input = Enumerable.Repeat("a", 2049).ToArray() });
        Assert.Equal(400, status);
        Assert.Contains("at most 2048", error!["error"]!["message"]!.GetValue<string>());
    }

    /// A sequence classifier (a *ForSequenceClassification checkpoint) answers vLLM's /classify: softmax of its head's
    /// last-token logits and the most probable label; it serves no embeddings, and an embedding model no /classify.
    [Fact]
    public async Task AClassifierAnswersClassifyAndNothingElse()
    {
        using var fixture = ClassifierFixture.Create("llama-gqa", ["negative", "neutral", "positive"]);
        await using var server = await RunningServer.StartAsync([], model: fixture.Folder.Path);   // auto: a classifier pools
        Assert.Equal(["negative", "neutral", "positive"], server.Engine.Info.Labels);
        // the model card lists them (model_info.labels: what the playground's form classifies into), and gRPC's ModelInfo
        var card = System.Text.Json.Nodes.JsonNode.Parse(await server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["model_info"]!;
        Assert.Equal(["negative", "neutral", "positive"], card["labels"]!.AsArray().Select(l => l!.GetValue<string>()));
        Assert.Equal(["negative", "neutral", "positive"], (await server.Grpc().GetModelInfoAsync(new GetModelInfoRequest())).Labels);
        var (status, body) = await server.PostAsync("/v1/classify", new { model = RunningServer.Model, input = Texts });
        Assert.Equal(200, status);
        Assert.Equal("list", body!["object"]!.GetValue<string>());
        Assert.StartsWith("classify-", body["id"]!.GetValue<string>());
        var data = body["data"]!.AsArray();
        Assert.Equal(Texts.Length, data.Count);
        await using var causal = await RunningServer.StartAsync(["--runner", "pooling", "--pooler-config", """{"normalize": false}"""]);
        for (var i = 0; i < Texts.Length; i++)
        {
            var (_, embedded) = await causal.PostAsync("/v1/embeddings", new { input = Texts[i], encoding_format = "float" });
            var logits = fixture.Logits(Floats(embedded!["data"]![0]!["embedding"]!));
            var exps = logits.Select(l => Math.Exp(l - logits.Max())).ToArray();
            var probs = data[i]!["probs"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
            Assert.Equal(3, data[i]!["num_classes"]!.GetValue<int>());
            for (var c = 0; c < 3; c++) Assert.Equal(exps[c] / exps.Sum(), probs[c], 1e-4);
            Assert.Equal(new[] { "negative", "neutral", "positive" }[Array.IndexOf(probs, probs.Max())], data[i]!["label"]!.GetValue<string>());
        }
        Assert.Equal(Texts.Sum(t => server.Engine.Prompts.Encode(t).Count), body["usage"]!["prompt_tokens"]!.GetValue<int>());

        // vLLM's /pooling: the classifier's probabilities, as /classify gives them
        var (poolStatus, pooled) = await server.PostAsync("/pooling", new { input = Texts });
        Assert.Equal(200, poolStatus);
        for (var i = 0; i < Texts.Length; i++)
        {
            var probs = data[i]!["probs"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
            var scores = pooled!["data"]![i]!["data"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
            for (var c = 0; c < 3; c++) Assert.Equal(probs[c], scores[c], 1e-6);
        }
        var (dimensions, _) = await server.PostAsync("/pooling", new { input = "a", dimensions = 2 });
        Assert.Equal(400, dimensions);

        var (embeddings, refusal) = await server.PostAsync("/v1/embeddings", new { input = "a" });
        Assert.Equal(400, embeddings);
        Assert.Contains("sequence classifier", refusal!["error"]!["message"]!.GetValue<string>());
        var (rerank, _) = await server.PostAsync("/rerank", new { query = "a", documents = new[] { "b" } });
        Assert.Equal(400, rerank);
        var (classify, notClassifier) = await causal.PostAsync("/classify", new { input = "a" });
        Assert.Equal(400, classify);
        Assert.Contains("not a sequence classifier", notClassifier!["error"]!["message"]!.GetValue<string>());
        var (generate, _) = await server.PostAsync("/v1/completions", new { prompt = "a" });
        Assert.Equal(400, generate);

        // use_activation false: the raw logits
        var (_, raw) = await server.PostAsync("/classify", new { input = Texts[0], use_activation = false });
        var (_, first) = await causal.PostAsync("/v1/embeddings", new { input = Texts[0], encoding_format = "float" });
        var expected = fixture.Logits(Floats(first!["data"]![0]!["embedding"]!));
        var rawProbs = raw!["data"]![0]!["probs"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
        for (var c = 0; c < 3; c++) Assert.Equal(expected[c], rawProbs[c], 1e-4);
    }

    /// A cross-encoder (a classifier of one label, as converted rerankers are published) scores each pair as one
    /// prompt: the query's tokens, then the document's, its logit through a sigmoid.
    [Fact]
    public async Task ACrossEncoderScoresEachPairAsOnePrompt()
    {
        using var fixture = ClassifierFixture.Create("llama-gqa", ["relevant"]);
        await using var server = await RunningServer.StartAsync([], model: fixture.Folder.Path);
        await using var causal = await RunningServer.StartAsync(["--runner", "pooling", "--pooler-config", """{"normalize": false}"""]);
        var query = "Which animal is quick?";
        var expected = new double[Texts.Length];
        var tokens = 0;
        for (var i = 0; i < Texts.Length; i++)
        {
            int[] pair = [.. server.Engine.Prompts.Encode(query), .. server.Engine.Prompts.Encode(Texts[i])];
            tokens += pair.Length;
            var (_, embedded) = await causal.PostAsync("/v1/embeddings", new { input = pair, encoding_format = "float" });
            expected[i] = 1 / (1 + Math.Exp(-fixture.Logits(Floats(embedded!["data"]![0]!["embedding"]!))[0]));
        }
        var (status, rerank) = await server.PostAsync("/v1/rerank", new { query, documents = Texts });
        Assert.Equal(200, status);
        var results = rerank!["results"]!.AsArray();
        Assert.Equal(expected.Select((score, i) => (score, i)).OrderByDescending(x => x.score).Select(x => x.i),
            results.Select(r => r!["index"]!.GetValue<int>()));
        foreach (var result in results)
            Assert.Equal(expected[result!["index"]!.GetValue<int>()], result["relevance_score"]!.GetValue<double>(), 1e-4);
        Assert.Equal(tokens, rerank["usage"]!["total_tokens"]!.GetValue<int>());
        var (_, score) = await server.PostAsync("/score", new { text_1 = query, text_2 = Texts[1] });
        Assert.Equal(expected[1], score!["data"]![0]!["score"]!.GetValue<double>(), 1e-4);
        var (truncated, _) = await server.PostAsync("/score", new { text_1 = query, text_2 = Texts[1], truncate_prompt_tokens = 4 });
        Assert.Equal(400, truncated);   // a pair is not cut
        var (whole, _) = await server.PostAsync("/score", new { text_1 = query, text_2 = Texts[1], truncate_prompt_tokens = -1 });
        Assert.Equal(200, whole);
    }

    /// The original Qwen3-Reranker's way (vLLM's classifier_from_token with is_original_qwen3_reranker, by
    /// --hf-overrides on a causal checkpoint): an LLM as reranker scores a pair as its two texts joined into one prompt,
    /// by the sigmoid of the second token's logit minus the first's, which /classify gives as the raw LABEL_0.
    [Fact]
    public async Task AnLlmAsRerankerScoresTheJoinedPair()
    {
        await using var server = await RunningServer.StartAsync(["--hf-overrides",
            """{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["a", "b"], "is_original_qwen3_reranker": true}"""],
            model: "qwen3-gqa");
        Assert.Equal(["LABEL_0"], server.Engine.Info.Labels);
        var (query, document) = ("Is this relevant? ", "The quick brown fox");
        var (_, classified) = await server.PostAsync("/classify", new { input = query + document, use_activation = false });
        var logit = classified!["data"]![0]!["probs"]![0]!.GetValue<double>();
        var (status, rerank) = await server.PostAsync("/rerank", new { query, documents = new[] { document } });
        Assert.Equal(200, status);
        Assert.Equal(1 / (1 + Math.Exp(-logit)), rerank!["results"]![0]!["relevance_score"]!.GetValue<double>(), 1e-5);
        Assert.Equal(server.Engine.Prompts.Encode(query + document).Count, rerank["usage"]!["total_tokens"]!.GetValue<int>());
    }

    /// config.json's problem_type picks the activation as vLLM does: a sigmoid per label for multi-label classification,
    /// none for regression.
    [Theory]
    [InlineData("multi_label_classification", 3)]
    [InlineData("regression", 1)]
    public async Task TheProblemTypePicksTheActivation(string problemType, int labels)
    {
        using var fixture = ClassifierFixture.Create("llama-gqa", [.. Enumerable.Range(0, labels).Select(i => $"L{i}")], problemType: problemType);
        await using var server = await RunningServer.StartAsync([], model: fixture.Folder.Path);
        await using var causal = await RunningServer.StartAsync(["--runner", "pooling", "--pooler-config", """{"normalize": false}"""]);
        var (_, body) = await server.PostAsync("/classify", new { input = Texts[2] });
        var (_, embedded) = await causal.PostAsync("/v1/embeddings", new { input = Texts[2], encoding_format = "float" });
        var logits = fixture.Logits(Floats(embedded!["data"]![0]!["embedding"]!));
        var probs = body!["data"]![0]!["probs"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
        for (var c = 0; c < labels; c++)
            Assert.Equal(problemType == "regression" ? logits[c] : 1 / (1 + Math.Exp(-logits[c])), probs[c], 1e-4);
    }

    [Fact]
    public async Task AMatryoshkaModelGivesTheDimensionsAsked()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling", "--hf-overrides", """{"is_matryoshka": true}"""]);
        var client = server.OpenAI().GetEmbeddingClient(RunningServer.Model);
        var cut = (await client.GenerateEmbeddingAsync(Texts[1], new global::OpenAI.Embeddings.EmbeddingGenerationOptions { Dimensions = 16 })).Value.ToFloats().ToArray();
        Assert.Equal(16, cut.Length);
        var (_, raw) = await server.PostAsync("/v1/embeddings", new { input = Texts[1], normalize = false, encoding_format = "float" });
        var prefix = Floats(raw!["data"]![0]!["embedding"]!).Take(16).ToArray();
        var norm = Math.Sqrt(prefix.Sum(v => (double)v * v));
        AssertClose(prefix.Select(v => (float)(v / norm)).ToArray(), cut);
        var (status, error) = await server.PostAsync("/v1/embeddings", new { input = "a", dimensions = server.Engine.Info.HiddenSize + 1 });
        Assert.Equal(400, status);
        Assert.Equal("dimensions", error!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task GrpcEmbedGivesTheHttpVectorsAndEachRunnerRefusesTheOthersCall()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        var grpc = server.Grpc();
        var info = await grpc.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal("pooling", info.Runner);
        Assert.Equal(server.Engine.Info.HiddenSize, info.EmbeddingSize);   // no Dense module: the hidden states' length
        Assert.Empty(info.Labels);                                          // not a classifier
        var ids = server.Engine.Prompts.Encode(Texts[2]);
        var request = new EmbedRequest
        {
            Inputs =
            {
                new EmbedInput { Text = Texts[0] },
                new EmbedInput { TokenIds = new TokenIds { Ids = { ids } } },
                new EmbedInput { Chat = new ChatInput { Messages = { new Serving.Grpc.V1.ChatMessage { Role = "user", Content = "Hello there" } } } },
            },
        };
        var response = await grpc.EmbedAsync(request);
        Assert.Equal(RunningServer.Model, response.Model);
        Assert.Equal(3, response.Embeddings.Count);
        var (_, http) = await server.PostAsync("/v1/embeddings", new { input = new object[] { Texts[0] }, encoding_format = "float" });
        AssertClose(Floats(http!["data"]![0]!["embedding"]!), [.. response.Embeddings[0].Values]);
        var (_, httpIds) = await server.PostAsync("/v1/embeddings", new { input = ids, encoding_format = "float" });
        AssertClose(Floats(httpIds!["data"]![0]!["embedding"]!), [.. response.Embeddings[1].Values]);
        var (_, httpChat) = await server.PostAsync("/v1/embeddings", new { messages = new[] { new { role = "user", content = "Hello there" } }, encoding_format = "float" });
        AssertClose(Floats(httpChat!["data"]![0]!["embedding"]!), [.. response.Embeddings[2].Values]);
        Assert.Equal(response.Usage.PromptTokens, response.Usage.TotalTokens);

        var empty = await Assert.ThrowsAsync<RpcException>(() => grpc.EmbedAsync(new EmbedRequest()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        var dimensions = await Assert.ThrowsAsync<RpcException>(() => grpc.EmbedAsync(new EmbedRequest { Inputs = { new EmbedInput { Text = "a" } }, Dimensions = 8 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, dimensions.StatusCode);
        var generate = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(grpc, GenerateResult.Greedy(4, [1, 2, 3])));
        Assert.Equal(StatusCode.InvalidArgument, generate.StatusCode);

        await using var generating = await RunningServer.StartAsync();
        var embed = await Assert.ThrowsAsync<RpcException>(() => generating.Grpc().EmbedAsync(new EmbedRequest { Inputs = { new EmbedInput { Text = "a" } } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, embed.StatusCode);
        Assert.Equal("generate", (await generating.Grpc().GetModelInfoAsync(new GetModelInfoRequest())).Runner);
    }

    [Fact]
    public async Task AClientThatGoesAwayFreesTheBlocks()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling", "--max-num-batched-tokens", "2", "--pooler-config", """{"pooling_type": "MEAN"}"""]);
        using var cancel = new CancellationTokenSource();
        var pending = server.PostAsync("/v1/embeddings", new { input = Enumerable.Range(3, 200).ToArray() }, cancel.Token);
        await server.WaitForStatsAsync(s => s.KVUsage > 0);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await server.WaitForStatsAsync(s => s.RunningRequests == 0 && s.WaitingRequests == 0 && s.KVUsage == 0);
    }

    [Fact]
    public void TheFlagsBindAsVllmsAndBadValuesAreStartupErrors()
    {
        static Serving.Server.Options.ServerOptions Bind(params string[] args) =>
            Options.ServerCommandLineTests.Bind(Serving.Server.Options.ServerCommandLine.ToConfiguration(args));
        Assert.Null(new Serving.Server.Options.ServerOptions().ToEngineOptions().Runner);   // auto
        Assert.Equal(Serving.Engine.Pooling.RunnerType.Pooling, Bind("--runner", "pooling").ToEngineOptions().Runner);
        Assert.Equal(Serving.Engine.Pooling.RunnerType.Pooling, Bind("--convert", "embed").ToEngineOptions().Runner);
        Assert.Equal(new Serving.Engine.Pooling.PoolerConfigOverrides(Serving.Engine.Pooling.PoolingType.Mean, false, null),
            Bind("--override-pooler-config", """{"pooling_type": "MEAN", "normalize": false}""").ToEngineOptions().PoolerConfig);
        Assert.Contains(Bind("--runner", "embed").Validate(), e => e.Contains("runner 'embed' is not one of auto, generate, pooling"));
        Assert.Contains(Bind("--convert", "classify").Validate(), e => e.StartsWith("convert must be auto, none or embed"));
        Assert.Contains(Bind("--convert", "embed", "--runner", "generate").Validate(), e => e.StartsWith("convert embed"));
        Assert.Contains(Bind("--pooler-config", """{"pooling_type": "ALL"}""").Validate(), e => e.Contains("pooling_type 'ALL' is not supported"));
    }

    static float[] Floats(JsonNode array) => [.. array.AsArray().Select(v => v!.GetValue<float>())];

    [Fact]
    public async Task InvocationsAnswerAsTheApiTheBodyNames()
    {
        await using var server = await RunningServer.StartAsync(["--runner", "pooling"]);
        foreach (var (path, body) in new (string, object)[]
        {
            ("/v1/embeddings", new { input = Texts }),
            ("/v1/embeddings", new { messages = new[] { new { role = "user", content = Texts[0] } } }),
            ("/score", new { text_1 = Texts[0], text_2 = new[] { Texts[1], Texts[2] } }),
            ("/rerank", new { query = Texts[0], documents = new[] { Texts[1], Texts[2] } }),
        })
        {
            var (status, direct) = await server.PostAsync(path, body);
            var (invokedStatus, invoked) = await server.PostAsync("/invocations", body);
            Assert.Equal(200, status);
            Assert.Equal(200, invokedStatus);
            Assert.Equal(direct!["object"]?.GetValue<string>(), invoked!["object"]?.GetValue<string>());
            // the same answer, up to the last bits of a vector computed in another batch
            var (expected, actual) = (Numbers(direct["data"] ?? direct["results"]), Numbers(invoked["data"] ?? invoked["results"]));
            Assert.Equal(expected.Length, actual.Length);
            for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-5);
        }
        // vLLM's /pooling: the same vectors, as pooling items
        var (_, embedded) = await server.PostAsync("/v1/embeddings", new { input = Texts, encoding_format = "float" });
        var (poolStatus, pooled) = await server.PostAsync("/pooling", new { input = Texts });
        Assert.Equal(200, poolStatus);
        Assert.StartsWith("pool-", pooled!["id"]!.GetValue<string>());
        for (var i = 0; i < Texts.Length; i++)
        {
            Assert.Equal("pooling", pooled["data"]![i]!["object"]!.GetValue<string>());
            AssertClose(Floats(embedded!["data"]![i]!["embedding"]!), Floats(pooled["data"]![i]!["data"]!));
        }
        var (refused, error) = await server.PostAsync("/invocations", new { prompt = "Hello" });
        Assert.Equal(400, refused);
        Assert.Contains("pooling", error!["error"]!["message"]!.GetValue<string>());
    }

    static double[] Numbers(JsonNode? node) => node switch
    {
        JsonArray array => [.. array.SelectMany(Numbers)],
        JsonObject obj => [.. obj.Select(p => p.Value).SelectMany(Numbers)],
        JsonValue value when value.TryGetValue<double>(out var number) => [number],
        _ => [],
    };

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-5f);
    }
}
