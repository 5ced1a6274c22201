namespace Serving.Server.Memory;

/// Gives memory back after a burst. Large request bodies (up to --max-request-body-bytes each, read whole) and
/// the strings made from them leave garbage on the large-object heap, and the GC runs only when something
/// allocates: an idle server would keep that memory committed for good. Every five seconds, when no collection
/// ran since the last look (the server was idle) and the GC has committed more than 64 MiB over what it held
/// after its last trim, one aggressive collection compacts the heap and returns the memory to the system.
internal sealed class IdleMemoryTrimmer(ILogger<IdleMemoryTrimmer> logger) : BackgroundService
{
    static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    const long Slack = 64L << 20;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var baseline = Committed();
        var collections = GC.CollectionCount(0);
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var idle = GC.CollectionCount(0) == collections;
            var committed = Committed();
            if (idle && committed > baseline + Slack)
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                var after = Committed();
                Log.MemoryTrimmed(logger, committed >> 20, after >> 20);
                baseline = after;
            }
            baseline = Math.Min(baseline, committed);
            collections = GC.CollectionCount(0);
        }
    }

    static long Committed() => GC.GetGCMemoryInfo().TotalCommittedBytes;
}
