using ScottPlot;

namespace Serving.Training.Reports;

/// Charts carry their own font (DejaVu Sans, embedded from the load generator's copy): the GPU machine and many
/// containers have no system fonts, and SkiaSharp then draws no text at all.
internal static class ChartFont
{
    const string Name = "DejaVu Sans";
    static readonly Lazy<bool> Registered = new(Register);

    public static void Use() => _ = Registered.Value;

    static bool Register()
    {
        var path = Path.Combine(Path.GetTempPath(), "serving-training-DejaVuSans.ttf");
        if (!File.Exists(path))
        {
            var unique = $"{path}.{Environment.ProcessId}";
            using (var font = typeof(ChartFont).Assembly.GetManifestResourceStream("Serving.Training.Reports.DejaVuSans.ttf")!)
            using (var file = File.Create(unique))
                font.CopyTo(file);
            File.Move(unique, path, overwrite: true); // atomic: another process never reads half a font
        }
        Fonts.AddFontFile(Name, path);
        Fonts.Default = Name;
        return true;
    }

    public static void Save(Plot plot, string path, int width = 900, int height = 550)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, width, height);
    }
}
