using ScottPlot;

namespace Serving.Plotting;

/// Charts carry their own font (DejaVu Sans, embedded as "Serving.Plotting.DejaVuSans.ttf"): the GPU machine, servers
/// and many containers have no system fonts, and SkiaSharp then draws no text at all. One file for the load
/// generator's charts and the training reports (Serving.Training links it, with the font).
internal static class ChartFont
{
    const string Name = "DejaVu Sans";
    static readonly Lazy<bool> Registered = new(Register);

    /// Makes the embedded font ScottPlot's default (once per process).
    public static void Use() => _ = Registered.Value;

    static bool Register()
    {
        var path = Path.Combine(Path.GetTempPath(), "serving-charts-DejaVuSans.ttf");
        if (!File.Exists(path))
        {
            var unique = $"{path}.{Environment.ProcessId}";
            using (var font = typeof(ChartFont).Assembly.GetManifestResourceStream("Serving.Plotting.DejaVuSans.ttf")!)
            using (var file = File.Create(unique))
                font.CopyTo(file);
            File.Move(unique, path, overwrite: true); // atomic: another process never reads half a font
        }
        Fonts.AddFontFile(Name, path);
        Fonts.Default = Name;
        return true;
    }

    /// Writes the plot as a PNG, creating its folder.
    public static void Save(Plot plot, string path, int width = 900, int height = 550)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, width, height);
    }
}
