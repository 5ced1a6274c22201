// One server at a time: OpenTelemetry subscribes to meters by name process-wide, so two live servers in one
// test process would each export the other's instruments on /metrics. (A deployment runs one per process.)
[assembly: CollectionBehavior(DisableTestParallelization = true)]
