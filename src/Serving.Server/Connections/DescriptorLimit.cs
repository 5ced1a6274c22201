namespace Serving.Server.Connections;

/// The process's limit on open file descriptors (RLIMIT_NOFILE, "Max open files" in /proc/self/limits; the
/// .NET runtime raises the soft limit to the hard one at start). Null where /proc is not there.
internal static class DescriptorLimit
{
    public static long? Read()
    {
        const string path = "/proc/self/limits";
        if (!File.Exists(path)) return null;
        var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        var soft = line?["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return long.TryParse(soft, out var limit) ? limit : null;
    }
}
