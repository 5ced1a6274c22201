using System.CommandLine;
using System.Diagnostics;
using Serving.Engine.Cuda;
using Serving.Engine.Model;
using Serving.Engine.Distributed;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// serving-bench allreduce: what one tensor-parallel all-reduce of a decode step costs. Each of N ranks (a thread per
/// GPU, its own stream, NCCL from ncclCommInitAll, as the engine runs them) sums (batch, hidden) values in place,
/// many times back to back: the time per all-reduce is the latency a layer pays twice (after o_proj and down_proj).
/// First a check that every rank reads the right sum. On CPU the in-process group runs the same loop (a smoke test).
internal static class AllReduceBenchmark
{
    sealed record Options(string Device, int Size, int Hidden, int[] Batches, string Dtype, int Iterations, bool CudaGraph);

    sealed record Row(int Batch, long Bytes, double MicrosecondsPerAllReduce, double BusGBs);

    public static Command Command()
    {
        var device = new Option<string>("--device") { Description = "cuda[:N] (ranks on GPUs N, N+1, ...) or cpu", DefaultValueFactory = _ => "cuda" };
        var size = new Option<int>("--tensor-parallel-size", "-tp") { Description = "ranks (GPUs)", DefaultValueFactory = _ => 2 };
        var hidden = new Option<int>("--hidden") { Description = "hidden size (8192: Llama-3-70B)", DefaultValueFactory = _ => 8192 };
        var batches = new Option<int[]>("--batch") { Description = "tokens per step", DefaultValueFactory = _ => [1, 2, 4, 8, 16, 32, 64, 128, 256], AllowMultipleArgumentsPerToken = true };
        var dtype = new Option<string>("--dtype") { Description = "bfloat16, float16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var iterations = new Option<int>("--iterations") { Description = "all-reduces timed back to back per batch size", DefaultValueFactory = _ => 200 };
        var graph = new Option<bool>("--cuda-graph") { Description = "capture the all-reduces in a CUDA graph on each rank and time its replay" };
        var command = new Command("allreduce", "Latency of the tensor-parallel all-reduce, (batch, hidden) per rank, in place")
        {
            device, size, hidden, batches, dtype, iterations, graph,
        };
        command.SetAction(result => Run(new Options(result.GetValue(device)!, result.GetValue(size), result.GetValue(hidden),
            result.GetValue(batches)!, result.GetValue(dtype)!, result.GetValue(iterations), result.GetValue(graph))));
        return command;
    }

    static int Run(Options options)
    {
        var device = torch.device(options.Device);
        var cudaRun = device.type == DeviceType.CUDA;
        if (options.CudaGraph && !cudaRun) throw new ArgumentException("--cuda-graph needs --device cuda");
        using var group = TensorParallelGroup.Create(device, options.Size);
        AnsiConsole.MarkupLine($"all-reduce over {options.Size} ranks on {string.Join(", ", group.Devices)}" +
            (cudaRun ? $" (NCCL {Nccl.Version()})" : " (in-process)") + $", {options.Dtype}, hidden {options.Hidden}");
        var dtype = ModelDtype.Parse(options.Dtype);
        var start = new Barrier(options.Size);
        var results = new Row[options.Size][];
        var failures = new Exception?[options.Size];
        void RunOne(int rank)
        {
            try
            {
                results[rank] = RunRank(options, group, rank, dtype, start);
            }
            catch (Exception error)
            {
                failures[rank] = error;
                group.Abort();
                start.RemoveParticipant();
            }
        }
        var threads = Enumerable.Range(0, options.Size).Select(rank => new Thread(() => RunOne(rank)) { Name = $"allreduce-rank-{rank}" }).ToArray();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        if (failures.FirstOrDefault(f => f is not null) is { } failure) throw failure;

        var table = new Table().AddColumns("batch", "bytes per rank", "us per all-reduce", "bus GB/s");
        foreach (var row in results[0]) table.AddRow($"{row.Batch}", $"{row.Bytes}", $"{row.MicrosecondsPerAllReduce:F1}", $"{row.BusGBs:F1}");
        AnsiConsole.Write(table);
        return 0;
    }

    // One rank's thread: its stream, the check, then the timed loop per batch size (all ranks start each together).
    static Row[] RunRank(Options options, TensorParallelGroup group, int rank, ScalarType dtype, Barrier start)
    {
        var (communicator, device) = (group.Communicators[rank], group.Devices[rank]);
        using var stream = device.type == DeviceType.CUDA ? CudaStream.Create(CudaDevice.Open((int)device.index)) : null;
        stream?.MakeCurrent();
        using var scope = NewDisposeScope();
        Check(communicator, device, dtype, options);
        var rows = new List<Row>();
        foreach (var batch in options.Batches)
        {
            var x = zeros(batch, options.Hidden, dtype, device);   // zeros stay zeros: no overflow however many sums
            for (var i = 0; i < 5; i++) communicator.AllReduce(x);
            using var graph = options.CudaGraph ? Capture(communicator, x, options.Iterations) : null;
            Synchronize(stream);
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            if (graph is not null) graph.Replay();
            else for (var i = 0; i < options.Iterations; i++) communicator.AllReduce(x);
            Synchronize(stream);
            var microseconds = clock.Elapsed.TotalMicroseconds / options.Iterations;
            var bytes = x.NumberOfElements * x.ElementSize;
            // NCCL-tests' bus bandwidth of an all-reduce: 2 (N - 1) / N of the bytes cross each link
            var busGBs = bytes * 2.0 * (options.Size - 1) / options.Size / (microseconds * 1e-6) / 1e9;
            rows.Add(new Row(batch, bytes, microseconds, busGBs));
        }
        return [.. rows];
    }

    // rank r contributes r + 1 everywhere: every rank must read N (N + 1) / 2 everywhere
    static void Check(ICommunicator communicator, Device device, ScalarType dtype, Options options)
    {
        var expected = options.Size * (options.Size + 1) / 2.0;
        using Scalar contribution = (communicator.Rank + 1.0).ToScalar(), sum = expected.ToScalar();
        using var x = full(options.Batches.Max(), options.Hidden, contribution, dtype, device);
        communicator.AllReduce(x);
        if (!x.eq(sum).all().item<bool>())
            throw new InvalidOperationException($"rank {communicator.Rank}: the all-reduce gave {x.min().item<float>()}..{x.max().item<float>()}, not {expected}");
    }

    static CudaGraph Capture(ICommunicator communicator, Tensor x, int iterations)
    {
        var graph = new CudaGraph();
        graph.BeginCapture();
        for (var i = 0; i < iterations; i++) communicator.AllReduce(x);
        graph.EndCapture();
        return graph;
    }

    static void Synchronize(CudaStream? stream) => stream?.Synchronize();
}
