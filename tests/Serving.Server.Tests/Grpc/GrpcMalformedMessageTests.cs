using Grpc.Core;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// A message that does not parse (garbage, a truncated varint, invalid UTF-8 in a string field, groups nested
/// 10,000 deep) is the client's mistake: INVALID_ARGUMENT with one short log line, never UNKNOWN with a stack
/// trace; without the API key it is UNAUTHENTICATED, as a well-formed call would be. The bytes are sent as
/// they are, through a pass-through marshaller, plain or gzip-compressed (the client's grpc-internal-encoding-request).
[Collection("server")]
public sealed class GrpcMalformedMessageTests(SharedServer shared)
{
    readonly RunningServer _server = shared.Server;

    static readonly Marshaller<byte[]> Raw = Marshallers.Create(bytes => bytes, bytes => bytes);

    public static TheoryData<string, bool> Cases => new()
    {
        { "garbage", false }, { "truncated varint", false }, { "invalid utf-8", false }, { "deep groups", false },
        { "garbage", true }, { "invalid utf-8", true }, { "deep groups", true },
    };

    static byte[] Message(string name) => name switch
    {
        "garbage" => [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x13, 0x37],
        "truncated varint" => [0x28, 0x80, 0x80],                     // field 5 (varint) whose bytes never end
        "invalid utf-8" => [0x0A, 0x03, 0x61, 0xC3, 0x28],             // field 1 (string) = "a" + a broken pair
        "deep groups" => [.. Enumerable.Repeat((byte)0x5B, 10_000), .. Enumerable.Repeat((byte)0x5C, 10_000)], // start/end group 11
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AMalformedMessageIsInvalidArgumentWithOneShortLogLine(string name, bool gzip)
    {
        var log = LogCapture.AttachTo(_server);
        foreach (var (method, type) in new[] { ("Generate", MethodType.ServerStreaming), ("Tokenize", MethodType.Unary) })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => CallAsync(method, type, Message(name), RunningServer.ApiKey, gzip));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains("could not be parsed", error.Status.Detail);
            var anonymous = await Assert.ThrowsAsync<RpcException>(() => CallAsync(method, type, Message(name), apiKey: null, gzip));
            Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
        }
        var lines = log.Entries.Where(e => e.Category.StartsWith("Serving", StringComparison.Ordinal) || e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).ToList();
        Assert.Equal(4, lines.Count);
        Assert.All(lines, line => Assert.Null(line.Exception));
        Assert.All(lines, line => Assert.DoesNotContain("\n", line.Text));
        var ok = await GenerateResult.ReadAsync(_server.Grpc(), GenerateResult.Greedy(2));
        Assert.Equal(2, ok.TokenIds().Length);
    }

    async Task CallAsync(string name, MethodType type, byte[] message, string? apiKey, bool gzip = false)
    {
        var method = new Method<byte[], byte[]>(type, "serving.v1.Generation", name, Raw, Raw);
        var invoker = _server.GrpcInvoker(apiKey);
        var options = new CallOptions(gzip ? new Metadata { { "grpc-internal-encoding-request", "gzip" } } : null);
        if (type == MethodType.Unary)
        {
            await invoker.AsyncUnaryCall(method, null, options, message);
            return;
        }
        using var call = invoker.AsyncServerStreamingCall(method, null, options, message);
        await foreach (var _ in call.ResponseStream.ReadAllAsync()) { }
    }
}
