namespace Serving.LoadGen.Tests.Support;

/// A fresh folder under the system temp dir, deleted on Dispose.
public sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("loadgen-tests-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
