using System.Diagnostics;

namespace Serving.LoadGen.Clients;

/// Stamps the arrival of each output chunk of one streamed request against the moment it was sent
/// (monotonic clock): the first arrival gives TTFT, each later one an inter-token latency.
internal sealed class StreamTimer
{
    readonly long _start = Stopwatch.GetTimestamp();
    readonly List<double> _itl = [];
    long _last;

    public double? Ttft { get; private set; }
    public IReadOnlyList<double> Itl => _itl;
    public int NumChunks { get; private set; }
    /// Seconds from sending to the last output chunk (0 before any arrived).
    public double Latency => _last == 0 ? 0 : Stopwatch.GetElapsedTime(_start, _last).TotalSeconds;

    public void OnOutput()
    {
        var now = Stopwatch.GetTimestamp();
        if (Ttft is null) Ttft = Stopwatch.GetElapsedTime(_start, now).TotalSeconds;
        else _itl.Add(Stopwatch.GetElapsedTime(_last, now).TotalSeconds);
        _last = now;
        NumChunks++;
    }
}
