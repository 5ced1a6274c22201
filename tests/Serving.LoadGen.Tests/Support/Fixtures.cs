using System.Text.Json.Nodes;

namespace Serving.LoadGen.Tests.Support;

/// The reference checkpoints in ../shared/fixtures (beside the repository root); SERVING_FIXTURES overrides.
public static class Fixtures
{
    public static string Root { get; } = FindRoot();

    public static string Dir(string name) => Path.Combine(Root, name);

    public static JsonObject Reference(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(name), "reference.json")))!.AsObject();

    static string FindRoot()
    {
        var fromEnv = Environment.GetEnvironmentVariable("SERVING_FIXTURES");
        if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures"));
        throw new InvalidOperationException("Serving.sln not found above the test assembly; set SERVING_FIXTURES");
    }
}

/// A fresh folder under the system temp dir, deleted on Dispose.
public sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("loadgen-tests-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
