namespace Serving.Tests.Shared;

/// A fresh folder under the system temp dir, deleted on Dispose.
public sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("serving-tests-").FullName;

    /// A copy of a fixture checkpoint's files (config, weights, tokenizer) to break in a test.
    public static TempDirectory CopyOf(string fixture)
    {
        var dir = new TempDirectory();
        foreach (var file in Directory.GetFiles(Fixtures.Dir(fixture)))
            System.IO.File.Copy(file, System.IO.Path.Combine(dir.Path, System.IO.Path.GetFileName(file)));
        return dir;
    }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
