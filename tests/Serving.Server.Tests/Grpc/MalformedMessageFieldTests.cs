using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Serving.Grpc.V1;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// Bad input over gRPC is the client's error too: each call's request, with every field set (the sampling parameters,
/// a constraint, a chat), has each field in turn set to an edge value of its type (0, -1 and the type's extremes, NaN
/// and infinity, empty, NUL and very long strings, an odd element added to a list or map, a message cleared); every
/// call ends OK or with a status the client caused, never INTERNAL or UNKNOWN, and the engine serves on.
public sealed class MalformedMessageFieldTests : IAsyncLifetime
{
    RunningServer _server = null!;

    public async Task InitializeAsync() => _server = await RunningServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    static readonly StatusCode[] ServerFaults = [StatusCode.Internal, StatusCode.Unknown, StatusCode.DataLoss, StatusCode.Unimplemented];

    static GenerateRequest Generate(bool chat)
    {
        var request = Sampled();
        if (chat)
            request.Chat = new ChatInput
            {
                Messages = { new ChatMessage { Role = "system", Content = "sys" }, new ChatMessage { Role = "user", Content = "Hi", Name = "u" } },
                AddGenerationPrompt = true,
            };
        else request.Text = "Hello";
        return request;
    }

    static GenerateRequest Sampled() => new()
    {
        RequestId = "r", Model = RunningServer.Model, Priority = 0, CacheSalt = "s", AddSpecialTokens = true,
        Sampling = new SamplingParameters
        {
            MaxTokens = 2, Temperature = 0.7f, TopP = 0.9f, TopK = 5, MinP = 0.01f, Seed = 3, PresencePenalty = 0.1f, FrequencyPenalty = 0.1f,
            RepetitionPenalty = 1.1f, LogitBias = { [5] = 1f }, Stop = { "zz" }, StopTokenIds = { 7 }, MinTokens = 1, N = 2, Logprobs = true,
            TopLogprobs = 2, SkipSpecialTokens = true, PromptLogprobs = 1, AllowedTokenIds = { 5, 6, 7, 8 }, BadWords = { "qq" },
            LengthPenalty = 1f,
            StructuredOutputs = new StructuredOutputs { Regex = "[a-z]{1,3}" },
        },
    };

    [Fact]
    public async Task EveryFieldAtAnEdgeOfItsTypeEndsWithAClientStatus()
    {
        var client = _server.Grpc();
        var faults = new List<string>();
        async Task CallAsync(string what, Func<Task> call)
        {
            try
            {
                await call();
            }
            catch (RpcException error) when (!ServerFaults.Contains(error.StatusCode))
            {
            }
            catch (RpcException error)
            {
                faults.Add($"{error.StatusCode} {what}: {error.Status.Detail}");
            }
        }
        foreach (var chat in new[] { false, true })
            foreach (var (path, request) in Mutations(Generate(chat)))
                await CallAsync(path, async () =>
                {
                    using var call = client.Generate(request);
                    while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
                });
        var embed = new EmbedRequest
        {
            Model = RunningServer.Model, Inputs = { new EmbedInput { Text = "a" }, new EmbedInput { TokenIds = new TokenIds { Ids = { 1, 2 } } } },
            Dimensions = 4, Normalize = true, TruncatePromptTokens = 2,
        };
        foreach (var (path, request) in Mutations(embed)) await CallAsync(path, async () => await client.EmbedAsync(request));
        var tokenize = new TokenizeRequest { Model = RunningServer.Model, Text = "Hello", AddSpecialTokens = true, ReturnTokenTexts = true };
        foreach (var (path, request) in Mutations(tokenize)) await CallAsync(path, async () => await client.TokenizeAsync(request));
        var detokenize = new DetokenizeRequest { Model = RunningServer.Model, TokenIds = { 1, 2, 3 }, SkipSpecialTokens = true };
        foreach (var (path, request) in Mutations(detokenize)) await CallAsync(path, async () => await client.DetokenizeAsync(request));

        Assert.True(faults.Count == 0, string.Join("\n", faults.Take(40)));
        using var plain = client.Generate(new GenerateRequest { Text = "Hello", Sampling = new SamplingParameters { MaxTokens = 2 } });
        var responses = 0;
        while (await plain.ResponseStream.MoveNext(CancellationToken.None)) responses++;
        Assert.True(responses > 0);
    }

    /// Copies of the request, each with one field (at any depth) set to an edge value, named by the field's path.
    static IEnumerable<(string Path, T Request)> Mutations<T>(T request) where T : IMessage<T>
    {
        foreach (var (path, edit) in Edits(request.Descriptor, ""))
        {
            var copy = request.Clone();
            if (edit(copy)) yield return (path, copy);
        }
    }

    // (path, an edit of a message of this descriptor that reports whether it found the field to change)
    static IEnumerable<(string, Func<IMessage, bool>)> Edits(MessageDescriptor descriptor, string prefix)
    {
        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            var path = prefix + field.Name;
            var accessor = field.Accessor;
            if (field.IsMap)
            {
                foreach (var (key, value) in new (object, object)[] { (-1, float.NaN), (int.MaxValue, float.PositiveInfinity), (0, -1e30f) })
                    yield return ($"{path}[{key}]={value}", m => { ((IDictionary)accessor.GetValue(m)).Add(key, value); return true; });
                continue;
            }
            var edges = Edges(field.FieldType);
            if (field.IsRepeated)
            {
                if (field.FieldType == FieldType.Message)
                {
                    foreach (var (inner, edit) in Edits(field.MessageType, path + "[0]."))
                        yield return (inner, m => ((IList)accessor.GetValue(m)) is { Count: > 0 } list && edit((IMessage)list[0]!));
                    yield return (path + " cleared", m => { ((IList)accessor.GetValue(m)).Clear(); return true; });
                    continue;
                }
                foreach (var value in edges)
                    yield return ($"{path} + {Show(value)}", m => { ((IList)accessor.GetValue(m)).Add(value); return true; });
                yield return (path + " cleared", m => { ((IList)accessor.GetValue(m)).Clear(); return true; });
                continue;
            }
            if (field.FieldType == FieldType.Message)
            {
                if (field.MessageType.FullName.StartsWith("google.protobuf.", StringComparison.Ordinal)) continue;
                foreach (var (inner, edit) in Edits(field.MessageType, path + "."))
                    yield return (inner, m => accessor.GetValue(m) is IMessage child && edit(child));
                yield return (path + " cleared", m => { accessor.Clear(m); return true; });
                continue;
            }
            foreach (var value in edges)
                yield return ($"{path}={Show(value)}", m => { accessor.SetValue(m, value); return true; });
        }
    }

    static object[] Edges(FieldType type) => type switch
    {
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => [0, -1, int.MaxValue, int.MinValue],
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => [0L, -1L, long.MaxValue, long.MinValue],
        FieldType.UInt32 or FieldType.Fixed32 => [0u, uint.MaxValue],
        FieldType.UInt64 or FieldType.Fixed64 => [0ul, ulong.MaxValue],
        FieldType.Float => [float.NaN, float.PositiveInfinity, -1f, 0f, 1e30f],
        FieldType.Double => [double.NaN, double.NegativeInfinity, -1.0, 1e300],
        FieldType.Bool => [true, false],
        FieldType.String => ["", "\0", new string('x', 5000), "é\u2028"],
        _ => [],
    };

    static string Show(object value) => value is string s ? $"\"{(s.Length > 8 ? s[..8] + "..." : s)}\"" : value.ToString()!;
}
