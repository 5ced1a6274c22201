using System.Reflection;

namespace Serving.Deploy.Tests.Support;

/// Where things are: the repository (found by Serving.sln above the test assembly), deploy/ and the server's
/// build output. The fixture checkpoints come from Fixtures (tests/Shared).
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Deploy(params string[] parts) => Path.Combine([Root, "deploy", .. parts]);

    public static string Dockerfile => Path.Combine(Root, "Dockerfile");

    /// The server's own build output (bin/<Configuration>/<tfm>), built because this project references it.
    public static string ServerOutput
    {
        get
        {
            var assembly = typeof(RepoPaths).Assembly;
            var configuration = assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
            var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Name;
            return Path.Combine(Root, "src", "Serving.Server", "bin", configuration, tfm);
        }
    }

    /// Where tests leave files for deploy/validate.sh (the rendered chart); git-ignored.
    public static string Artifacts(params string[] parts) => Path.Combine([Root, "artifacts", "deploy", .. parts]);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln"))) return dir.FullName;
        throw new InvalidOperationException("Serving.sln not found above the test assembly");
    }
}
