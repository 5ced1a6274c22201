using Serving.Server.Options;
using static Serving.Server.Tests.Options.ServerCommandLineTests;

namespace Serving.Server.Tests.Options;

/// --grpc-port and --enable-grpc-reflection are settings like every other flag (appsettings, environment).
public sealed class GrpcOptionsTests
{
    [Fact]
    public void GrpcFlagsBindAndAreOffByDefault()
    {
        var options = Bind(ServerCommandLine.ToConfiguration(["--grpc-port", "50051", "--enable-grpc-reflection"]));
        Assert.Equal((50051, true), (options.GrpcPort, options.EnableGrpcReflection));
        Assert.Empty(options.Validate());
        var defaults = Bind(ServerCommandLine.ToConfiguration([]));
        Assert.Equal((null, false), (defaults.GrpcPort, defaults.EnableGrpcReflection));
        var fromEnvironment = Bind(ServerCommandLine.ToConfiguration([]), new() { ["Server:GrpcPort"] = "6000" });
        Assert.Equal(6000, fromEnvironment.GrpcPort);
    }

    [Theory]
    [InlineData("--grpc-port 8000", "grpc-port must differ from port")]
    [InlineData("--grpc-port 70000", "grpc-port must be 0..65535")]
    [InlineData("--enable-grpc-reflection", "enable-grpc-reflection needs grpc-port")]
    [InlineData("--host localhost --port 8000 --grpc-port 0", "grpc-port 0 (any free port) needs an IP address")]
    public void UnusableGrpcSettingsAreRefusedAtStartUp(string flags, string error) =>
        Assert.Contains(Bind(ServerCommandLine.ToConfiguration(flags.Split(' '))).Validate(), e => e.StartsWith(error, StringComparison.Ordinal));
}
