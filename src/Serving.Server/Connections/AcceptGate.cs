using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;

namespace Serving.Server.Connections;

/// Kestrel's socket transport with back-pressure: a listener accepts a connection only while fewer than Ceiling of
/// the connections accepted are still open (until the transport fires their ConnectionClosed), so a flood faster than the
/// server can shed waits in the kernel's accept queue instead of taking the process's file descriptors. ConnectionLimit
/// still closes connections over --max-connections as they arrive; Ceiling leaves half as many again for those being
/// closed (on a busy 2-core machine their closing lagged their arrival by hundreds and a 1500-connection flood took the
/// process to its 1,024 descriptors). Registered last, so Kestrel binds through it (it tries transports last first).
internal sealed class AcceptGate : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    readonly SocketTransportFactory _sockets;
    readonly SemaphoreSlim _room;    // a place per open accepted connection, and per accept under way
    int _open;

    public AcceptGate(ConnectionLimit limit, IOptions<SocketTransportOptions> options, ILoggerFactory loggers)
    {
        _sockets = new SocketTransportFactory(options, loggers);
        Ceiling = limit.Max + Math.Max(16, limit.Max / 2);
        _room = new SemaphoreSlim(Ceiling);
    }

    /// The most accepted connections open at once, over all listeners.
    public int Ceiling { get; }

    /// Accepted connections that have not closed yet.
    public int Open => Volatile.Read(ref _open);

    public bool CanBind(EndPoint endpoint) => _sockets.CanBind(endpoint);

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        new Listener(await _sockets.BindAsync(endpoint, cancellationToken), this);

    void Accepted(ConnectionContext connection)
    {
        Interlocked.Increment(ref _open);
        connection.ConnectionClosed.Register(static state =>
        {
            var gate = (AcceptGate)state!;
            Interlocked.Decrement(ref gate._open);
            gate._room.Release();
        }, this);
    }

    sealed class Listener(IConnectionListener sockets, AcceptGate gate) : IConnectionListener
    {
        readonly CancellationTokenSource _unbound = new();

        public EndPoint EndPoint => sockets.EndPoint;

        /// The next connection once there is room for it; null once unbound (as the socket listener's own).
        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
            try
            {
                await gate._room.WaitAsync(stop.Token);
            }
            catch (OperationCanceledException) when (_unbound.IsCancellationRequested)
            {
                return null;
            }
            ConnectionContext? connection;
            try
            {
                connection = await sockets.AcceptAsync(cancellationToken);
            }
            catch
            {
                gate._room.Release();
                throw;
            }
            if (connection is null)
            {
                gate._room.Release();
                return null;
            }
            gate.Accepted(connection);
            return connection;
        }

        public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            await _unbound.CancelAsync();
            await sockets.UnbindAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            await sockets.DisposeAsync();
            _unbound.Dispose();
        }
    }
}
