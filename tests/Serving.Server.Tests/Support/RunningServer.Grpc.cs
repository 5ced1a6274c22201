using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Serving.Grpc.V1;
using GenerationClient = Serving.Grpc.V1.Generation.GenerationClient;
using Serving.Server.Grpc;

namespace Serving.Server.Tests.Support;

/// The gRPC side of the running server: its HTTP/2 port and clients that send the API key as metadata.
public sealed partial class RunningServer
{
    GrpcChannel? _grpcChannel;

    /// The OpenAI port: the bound address that is not the gRPC one.
    static Uri HttpAddress(WebApplication app)
    {
        var grpc = app.Services.GetRequiredService<GrpcEndpoint>().Address;
        return app.Urls.Select(url => new Uri(url)).Single(url => url != grpc);
    }

    public Uri GrpcAddress => App.Services.GetRequiredService<GrpcEndpoint>().Address
        ?? throw new InvalidOperationException("the server has no bound gRPC listener");

    /// One HTTP/2 connection shared by the tests' calls (disposed with the server).
    public GrpcChannel GrpcChannel => _grpcChannel ??= GrpcChannel.ForAddress(GrpcAddress);

    /// A call invoker that adds "authorization: Bearer apiKey" (nothing when apiKey is null).
    public CallInvoker GrpcInvoker(string? apiKey = ApiKey) => apiKey is null
        ? GrpcChannel.CreateCallInvoker()
        : GrpcChannel.Intercept(metadata =>
        {
            metadata.Add("authorization", $"Bearer {apiKey}");
            return metadata;
        });

    public GenerationClient Grpc(string? apiKey = ApiKey) => new(GrpcInvoker(apiKey));
}
