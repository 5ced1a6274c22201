using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Serving.Server.Connections;

namespace Serving.Server.Grpc;

/// The gRPC listener on --grpc-port: HTTP/2 only (cleartext h2c with prior knowledge is what gRPC clients
/// speak to a plain port), beside the OpenAI port, which keeps Kestrel's HTTP/1.1-and-HTTP/2 default.
/// Address is known once Kestrel has bound the port (port 0 picks a free one).
internal sealed class GrpcEndpoint
{
    ListenOptions? _listen;

    public void Listen(KestrelServerOptions kestrel, string host, int port, ConnectionLimit limit)
    {
        void Configure(ListenOptions listen)
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.Use(limit.Wrap);
            _listen = listen;
        }
        if (host == "localhost") kestrel.ListenLocalhost(port, Configure);
        else kestrel.Listen(IPAddress.Parse(host), port, Configure);
    }

    /// http://address:port of the bound listener; null when gRPC is off or the server has not started.
    public Uri? Address => _listen?.IPEndPoint is { Port: > 0 } endPoint ? new Uri($"http://{endPoint}") : null;
}
