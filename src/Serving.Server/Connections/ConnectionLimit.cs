using Microsoft.AspNetCore.Connections;
using Serving.Server.Options;

namespace Serving.Server.Connections;

/// Caps the open client connections over both ports (--max-connections), so that idle or slow connections
/// can never take the process to its file-descriptor limit (where it died, or its listener stopped accepting
/// for good). A connection over the cap is closed as soon as it is accepted, which frees its descriptor at
/// once. Shedding is logged once when it starts and then at most every ten seconds with a count, never per
/// connection. Idle connections are closed by Kestrel after --timeout-keep-alive (ServerApp). AcceptGate bounds the
/// connections accepted and not yet closed, so closing that lags a flood cannot reach the descriptor limit either.
internal sealed class ConnectionLimit(ServerOptions options, ILogger<ConnectionLimit> logger)
{
    static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    readonly Lock _logLock = new();
    int _open;
    long _shedSinceLog;
    DateTime _lastLog = DateTime.MinValue;

    public int Max { get; } = options.MaxConnections > 0 ? options.MaxConnections : FromDescriptorLimit(DescriptorLimit.Read());

    public int Open => Volatile.Read(ref _open);

    /// --max-connections 0: half of what the descriptor limit leaves after 512 for the runtime (each loaded assembly
    /// holds descriptors: 250 to 450 are open at rest), the model files and libraries; at least 16, at most 10,000.
    /// The other half is for connections accepted only to be closed: under a flood on a busy machine their closing
    /// lags their arrival by hundreds (at a limit of 1,024, half the limit less 128 left too little).
    public static int FromDescriptorLimit(long? limit) =>
        limit is { } l ? (int)Math.Clamp((l - 512) / 2, 16, 10_000) : 10_000;

    /// Kestrel connection middleware; the same instance wraps every listener, so the count is the process's.
    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        if (Interlocked.Increment(ref _open) > Max)
        {
            Interlocked.Decrement(ref _open);
            Shed();
            await connection.Transport.Output.CompleteAsync();
            await connection.Transport.Input.CompleteAsync();
            return;
        }
        try
        {
            await next(connection);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    };

    void Shed()
    {
        lock (_logLock)
        {
            _shedSinceLog++;
            var now = DateTime.UtcNow;
            if (now - _lastLog < LogInterval) return;
            Log.ConnectionsShed(logger, _shedSinceLog, Max);
            (_shedSinceLog, _lastLog) = (0, now);
        }
    }
}
