using System.Net.Sockets;

namespace Serving.Server.Connections;

/// The path --uds binds: free, or a socket a stopped server left behind (removed when the server binds, as Python's
/// asyncio does for uvicorn). A server still answering there, or any other file, is refused at start (Problem). Once
/// bound, the socket takes uvicorn's permissions (ModeFor): read and write for everyone, or the left socket's.
internal static class UnixSocketPath
{
    const UnixFileMode Everyone = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;   // 0o666
    enum State { Free, LeftSocket, Listening, NotASocket }

    /// Why the path cannot be served; null when it can.
    public static string? Problem(string path) => Of(path) switch
    {
        State.Listening => $"uds: another server is listening on '{path}'",
        State.NotASocket => $"uds: '{path}' is a file, not a socket",
        _ => null,
    };

    /// The permissions the bound socket is given, read before Claim removes a left one: that socket's, else 0o666
    /// (uvicorn's; without it the process's umask would decide who may connect). Null on Windows (no such modes).
    public static UnixFileMode? ModeFor(string path) =>
        OperatingSystem.IsWindows() ? null : File.Exists(path) ? File.GetUnixFileMode(path) : Everyone;

    /// The path, a left socket removed first.
    public static string Claim(string path)
    {
        if (Of(path) == State.LeftSocket) File.Delete(path);
        return path;
    }

    static State Of(string path)
    {
        if (!File.Exists(path)) return State.Free;
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                return State.Listening;
            }
            catch (SocketException refused) when (refused.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // nothing listens: a left socket, or a file that is not one (which opens as a file)
            }
        }
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return State.NotASocket;
        }
        catch (IOException)
        {
            return State.LeftSocket;   // a socket opens as no file (ENXIO)
        }
    }
}
