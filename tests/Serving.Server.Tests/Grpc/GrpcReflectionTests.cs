using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Grpc;

/// With --enable-grpc-reflection, tools such as grpcurl can list and describe the services (given the key).
public sealed class GrpcReflectionTests
{
    [Fact]
    public async Task ReflectionListsTheServicesWhenEnabledAndIsAbsentOtherwise()
    {
        await using (var server = await RunningServer.StartAsync(["--enable-grpc-reflection"]))
        {
            var services = await ListServicesAsync(new ServerReflection.ServerReflectionClient(server.GrpcInvoker()));
            Assert.Contains("serving.v1.Generation", services);
            Assert.Contains("grpc.health.v1.Health", services);
            var anonymous = new ServerReflection.ServerReflectionClient(server.GrpcInvoker(apiKey: null));
            var refused = await Assert.ThrowsAsync<RpcException>(() => ListServicesAsync(anonymous));
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        }
        await using (var server = await RunningServer.StartAsync())
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                ListServicesAsync(new ServerReflection.ServerReflectionClient(server.GrpcInvoker())));
            Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        }
    }

    static async Task<IReadOnlyList<string>> ListServicesAsync(ServerReflection.ServerReflectionClient client)
    {
        using var call = client.ServerReflectionInfo();
        try
        {
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // The server may end the call (no key) before the request is written; its status comes with the response.
        }
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        return [.. call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name)];
    }
}
