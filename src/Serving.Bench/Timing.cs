using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Wall-clock timing of device work: synchronize, run, synchronize, so each sample covers the whole queued
/// work. Warm-up runs first (kernel compilation, allocator growth, cuBLAS handles stay out of the numbers), on a GPU
/// for at least <see cref="GpuWarmup"/>: a GPU idle for a moment (the host building the next shape) lowers its
/// clocks, and a few 5 ms steps do not bring them back (H200: the first batch-1 shape of a run measured 7.4 ms against
/// 5.0-5.3 later). The median of the samples is reported.
internal static class Timing
{
    static readonly TimeSpan GpuWarmup = TimeSpan.FromMilliseconds(300);

    public static double MedianMilliseconds(Action action, int warmup, int samples, bool cuda)
    {
        var warming = Stopwatch.GetTimestamp();
        for (var i = 0; i < warmup || (cuda && Stopwatch.GetElapsedTime(warming) < GpuWarmup); i++)
        {
            action();
            Synchronize(cuda);                              // so the warm-up's time is the device's
        }

        var times = new double[samples];
        for (var i = 0; i < samples; i++)
        {
            Synchronize(cuda);
            var start = Stopwatch.GetTimestamp();
            action();
            Synchronize(cuda);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        Array.Sort(times);
        return times[samples / 2];
    }

    static void Synchronize(bool cuda)
    {
        if (cuda)
        {
            torch.cuda.synchronize();
        }
    }
}

/// The two ceilings of the device, measured once per run: HBM bandwidth from a large device-to-device copy
/// (bytes read + written), and the dense matrix-product rate of the model dtype on random data.
internal sealed record DeviceCeilings(double BandwidthBytesPerSecond, double MatmulFlopsPerSecond)
{
    public static DeviceCeilings Measure(ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var cuda = device.type == DeviceType.CUDA;
        var elements = cuda ? 1L << 31 : 1L << 24;                                    // 4 GiB of bf16 on the GPU
        var source = randn(elements, dtype: dtype, device: device);
        var target = empty_like(source);
        var copyMs = Timing.MedianMilliseconds(() => target.copy_(source), 3, 10, cuda);
        var bandwidth = 2.0 * elements * source.ElementSize / (copyMs / 1000);
        var n = cuda ? 8192 : 512;
        var a = randn(n, n, dtype: dtype, device: device);
        var b = randn(n, n, dtype: dtype, device: device);
        var matmulMs = Timing.MedianMilliseconds(() => a.matmul(b).Dispose(), 3, 10, cuda);
        return new DeviceCeilings(bandwidth, 2.0 * n * n * n / (matmulMs / 1000));
    }
}
