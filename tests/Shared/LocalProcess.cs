using System.Net;
using System.Net.Sockets;

namespace Serving.Tests.Shared;

/// What tests that start the server as its own process need: the dotnet host running the tests, and a free port.
public static class LocalProcess
{
    /// The dotnet executable that runs this test host (DOTNET_HOST_PATH), else "dotnet" on the PATH.
    public static string DotnetHost() => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    /// A loopback TCP port nothing listens on now.
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
