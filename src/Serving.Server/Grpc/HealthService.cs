using Grpc.Core;
using Grpc.Health.V1;
using Serving.Engine;
using Serving.Server.Engine;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Serving.Server.Grpc;

/// grpc.health.v1.Health over the server's readiness (the signal /health/ready gives over HTTP): SERVING
/// only while requests are taken, NOT_SERVING while the model loads, while draining, and once the engine
/// loop died. "" (the whole server) and "serving.v1.Generation" are known; other names are NOT_FOUND in
/// Check and SERVICE_UNKNOWN in Watch.
/// The status is read from ServingState on each call rather than kept in a second copy; the engine has no
/// change events, so Watch polls it and sends each change. Watch ends once the engine has stopped after a
/// drain (nothing changes after that), so watchers do not hold up shutdown.
internal sealed class HealthService(ServingState state, ILlmEngine engine) : global::Grpc.Health.V1.Health.HealthBase
{
    static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);
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
        using var timer = new PeriodicTimer(PollInterval);
        do
        {
            var status = Current();
            if (status != sent) await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, cancellationToken);
            sent = status;
            if (state.IsDraining && engine.State == EngineState.Stopped) return;
        }
        while (await timer.WaitForNextTickAsync(cancellationToken));
    }

    ServingStatus Current() => state.IsReady ? ServingStatus.Serving : ServingStatus.NotServing;
}
