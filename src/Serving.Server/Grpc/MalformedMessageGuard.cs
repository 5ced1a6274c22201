using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Serving.Server.Auth;

namespace Serving.Server.Grpc;

/// gRPC parses a call's request message before any interceptor runs, and answers a message that does not parse
/// (garbage, a truncated varint, invalid UTF-8, groups nested past the recursion limit) with UNKNOWN and an
/// error-level stack trace. This middleware parses the one request message of unary and server-streaming calls
/// first, with the method's own parser, and answers INVALID_ARGUMENT with one short log line instead, after the
/// API key check (a caller without the key learns nothing about its bytes). It only looks at the buffered
/// bytes: gRPC then reads the same message as if untouched. Compressed messages and messages over
/// --max-request-body-bytes are left to gRPC (which decompresses, or answers RESOURCE_EXHAUSTED).
internal sealed class MalformedMessageGuard(RequestDelegate next, int maxMessageBytes, ILogger<MalformedMessageGuard> logger,
    BearerKey? key = null)
{
    const int FrameHeaderBytes = 5; // compressed flag (1) + message length (4, big-endian)

    static readonly Dictionary<string, MessageParser> Parsers = new[] { Serving.Grpc.V1.Generation.Descriptor, global::Grpc.Health.V1.Health.Descriptor }
        .SelectMany(service => service.Methods)
        .Where(method => !method.IsClientStreaming)
        .ToDictionary(method => $"/{method.Service.FullName}/{method.Name}", method => method.InputType.Parser);

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { } grpc
            || !Parsers.TryGetValue(grpc.Method.FullName, out var parser))
        {
            await next(context);
            return;
        }
        var method = grpc.Method.FullName;
        if (key is not null && !ApiKeyInterceptor.IsAuthorized(key, method, context.Request.Headers.Authorization.ToString()))
        {
            await RefuseAsync(context, method, StatusCode.Unauthenticated, ApiKeyInterceptor.Refusal);
            return;
        }
        if (await ProblemOfAsync(context.Request.BodyReader, parser, context.RequestAborted) is { } problem)
        {
            await RefuseAsync(context, method, StatusCode.InvalidArgument, $"The request message could not be parsed: {problem}");
            return;
        }
        await next(context);
    }

    /// Why the first message does not parse, or null when it does or is not this guard's to judge. Consumes nothing.
    async Task<string?> ProblemOfAsync(System.IO.Pipelines.PipeReader body, MessageParser parser, CancellationToken cancellationToken)
    {
        var header = await body.ReadAtLeastAsync(FrameHeaderBytes, cancellationToken);
        var compressed = header.Buffer.Length >= FrameHeaderBytes && header.Buffer.FirstSpan[0] != 0;
        var length = header.Buffer.Length >= FrameHeaderBytes ? ReadLength(header.Buffer) : -1;
        body.AdvanceTo(header.Buffer.Start);
        if (compressed || length < 0 || length > maxMessageBytes) return null;
        var frame = await body.ReadAtLeastAsync(FrameHeaderBytes + (int)length, cancellationToken);
        try
        {
            if (frame.Buffer.Length < FrameHeaderBytes + length) return null; // the stream ended early: gRPC says so
            parser.ParseFrom(frame.Buffer.Slice(FrameHeaderBytes, length));
            return null;
        }
        catch (InvalidProtocolBufferException error)
        {
            return error.Message.Split("  ")[0];
        }
        finally
        {
            body.AdvanceTo(frame.Buffer.Start);
        }
    }

    static long ReadLength(ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[FrameHeaderBytes];
        buffer.Slice(0, FrameHeaderBytes).CopyTo(header);
        return BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
    }

    /// A trailers-only gRPC answer: the status in the response headers, no message.
    Task RefuseAsync(HttpContext context, string method, StatusCode code, string message)
    {
        Log.GrpcRejected(logger, method, code, message);
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Uri.EscapeDataString(message);
        return response.CompleteAsync();
    }
}
