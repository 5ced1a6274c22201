using Grpc.Core;
using Grpc.Health.V1;
using Serving.Server.Engine;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Serving.Server.Grpc;

/// grpc.health.v1.Health over the server's readiness (the signal /health/ready gives over HTTP): SERVING
/// only while requests are taken, NOT_SERVING while the model loads, while draining, and once the engine
/// loop died. "" (the whole server) and "serving.v1.Generation" are known; other names are NOT_FOUND in
/// Check and SERVICE_UNKNOWN in Watch.
/// The status is read from ServingState on each call rather than kept in a second copy; Watch waits for
/// ServingState.Changed and sends each change (no polling: an idle watcher costs nothing). Watch ends once
/// nothing can change any more (the engine stopped after a drain, or died), so watchers never hold up shutdown.
internal sealed class HealthService(ServingState state) : global::Grpc.Health.V1.Health.HealthBase
{
    static readonly HashSet<string> Services = ["", Serving.Grpc.V1.Generation.Descriptor.FullName];

    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context)
    {
        if (!Services.Contains(request.Service))
            throw new RpcException(new Status(StatusCode.NotFound, $"Unknown service '{request.Service}'."));
        return Task.FromResult(new HealthCheckResponse { Status = Current() });
    }

    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream,
        ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        if (!Services.Contains(request.Service))
        {
            // The set of services never changes: say so once, then hold the stream as the protocol expects.
            await responseStream.WriteAsync(new HealthCheckResponse { Status = ServingStatus.ServiceUnknown }, cancellationToken);
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return;
        }
        ServingStatus? sent = null;
        while (true)
        {
            // final is read before the status: a state that turns final between the two reads is still sent (the
            // status read after it), and the loop goes round once more; read after, it could end the stream unsent
            var changed = state.Changed;
            var final = state.IsFinal;
            var status = Current();
            if (status != sent) await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, cancellationToken);
            sent = status;
            if (final) return;
            await changed.WaitAsync(cancellationToken);
        }
    }

    ServingStatus Current() => state.IsReady ? ServingStatus.Serving : ServingStatus.NotServing;
}
