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
/// bytes: gRPC then reads the same message as if untouched. A compressed message (grpc-encoding gzip or deflate) is
/// decompressed here to be parsed, up to --max-request-body-bytes; messages over that, or in another encoding, are left
/// to gRPC (which answers RESOURCE_EXHAUSTED or UNIMPLEMENTED).
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
        var encoding = context.Request.Headers["grpc-encoding"].ToString();
        if (await ProblemOfAsync(context.Request.BodyReader, parser, encoding, context.RequestAborted) is { } problem)
        {
            await RefuseAsync(context, method, StatusCode.InvalidArgument, $"The request message could not be parsed: {problem}");
            return;
        }
        await next(context);
    }

    /// Why the first message does not parse, or null when it does or is not this guard's to judge. Consumes nothing.
    async Task<string?> ProblemOfAsync(System.IO.Pipelines.PipeReader body, MessageParser parser, string encoding,
        CancellationToken cancellationToken)
    {
        var header = await body.ReadAtLeastAsync(FrameHeaderBytes, cancellationToken);
        var compressed = header.Buffer.Length >= FrameHeaderBytes && header.Buffer.FirstSpan[0] != 0;
        var length = header.Buffer.Length >= FrameHeaderBytes ? ReadLength(header.Buffer) : -1;
        body.AdvanceTo(header.Buffer.Start);
        if (length < 0 || length > maxMessageBytes || (compressed && encoding is not ("gzip" or "deflate"))) return null;
        var frame = await body.ReadAtLeastAsync(FrameHeaderBytes + (int)length, cancellationToken);
        try
        {
            if (frame.Buffer.Length < FrameHeaderBytes + length) return null; // the stream ended early: gRPC says so
            var message = frame.Buffer.Slice(FrameHeaderBytes, length);
            if (!compressed)
            {
                parser.ParseFrom(message);
                return null;
            }
            var decompressed = Decompress(message.ToArray(), encoding);
            if (decompressed is null) return null;   // larger than allowed: gRPC answers RESOURCE_EXHAUSTED
            parser.ParseFrom(decompressed);
            return null;
        }
        catch (InvalidProtocolBufferException error)
        {
            return error.Message.Split("  ")[0];
        }
        catch (InvalidDataException)
        {
            return $"the {encoding}-compressed message is not valid {encoding} data";
        }
        finally
        {
            body.AdvanceTo(frame.Buffer.Start);
        }
    }

    /// The message's bytes, or null past --max-request-body-bytes (read no further: a small message may expand without
    /// bound).
    byte[]? Decompress(byte[] compressed, string encoding)
    {
        using var input = new MemoryStream(compressed);
        using Stream stream = encoding == "gzip"
            ? new System.IO.Compression.GZipStream(input, System.IO.Compression.CompressionMode.Decompress)
            : new System.IO.Compression.ZLibStream(input, System.IO.Compression.CompressionMode.Decompress);
        var output = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            if (output.Length + read > maxMessageBytes) return null;
            output.Write(buffer, 0, read);
        }
        return output.ToArray();
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
