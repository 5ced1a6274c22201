using System.Collections.Concurrent;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Distributed;

/// Ranks 1 .. N-1 of a tensor-parallel model, each a LoadedModel of its shard on a thread of its own (its dispose
/// scopes, its CUDA context and stream), driven in lockstep by rank 0's thread, the engine thread: rank 0 hands every
/// peer the same work and runs its own share meanwhile. Owns the peers, their threads and the group.
internal sealed class PeerRanks : IDisposable
{
    readonly TensorParallelGroup _group;
    readonly Worker[] _workers;

    PeerRanks(TensorParallelGroup group, Worker[] workers) => (_group, _workers) = (group, workers);

    /// Starts a thread for each rank 1 .. Size-1 that loads its model there (load(rank)) while loadRankZero runs on this
    /// thread; returns once all are loaded. On a failure (the first that is not an abort is thrown) the peers loaded so
    /// far and the group are disposed.
    public static PeerRanks Load(TensorParallelGroup group, Func<int, LoadedModel> load, Action loadRankZero)
    {
        var workers = Enumerable.Range(1, group.Communicators.Count - 1).Select(rank => new Worker(rank, load)).ToArray();
        var peers = new PeerRanks(group, workers);
        try
        {
            loadRankZero();
            WaitAll(workers.Select(worker => worker.Loaded).ToArray());
            return peers;
        }
        catch
        {
            peers.Dispose();
            throw;
        }
    }

    public IEnumerable<LoadedModel> Models => _workers.Select(worker => worker.Model!);

    /// work(peer) on every peer's thread, in a dispose scope of its own; returns each result, in rank order.
    public T[] Invoke<T>(Func<LoadedModel, T> work) =>
        WaitAll(_workers.Select(worker => worker.Post(work)).ToArray());

    /// One step on every rank at once: peerWork(peer, rank) on each peer's thread while rankZero runs on this one. The
    /// ranks meet in the step's collectives; when one fails the group is aborted, so none waits forever for it, the
    /// group is rebuilt once every rank has left the step, and the first failure that is not that abort is thrown.
    public T Step<T>(Action<LoadedModel, int> peerWork, Func<T> rankZero)
    {
        var peers = _workers.Select(worker => worker.Post(model =>
        {
            try
            {
                peerWork(model, worker.Rank);
                return true;
            }
            catch
            {
                _group.Abort();
                throw;
            }
        })).ToArray();
        try
        {
            var result = rankZero();
            WaitAll(peers);
            return result;
        }
        catch (Exception error)
        {
            _group.Abort();
            Task.WhenAll(peers).ContinueWith(_ => { }).Wait();   // every peer has left the step
            Recover();
            throw RootCause(error, peers);
        }
    }

    void Recover()
    {
        try
        {
            _group.Recover();
        }
        catch (Exception)
        {
            // the group stays aborted: the next step fails saying so (TensorParallelAbortedException)
        }
    }

    static Exception RootCause(Exception rankZeroError, Task[] peers)
    {
        var errors = new[] { rankZeroError }.Concat(peers.Where(peer => peer.IsFaulted).SelectMany(peer => peer.Exception!.InnerExceptions));
        return errors.FirstOrDefault(error => error is not TensorParallelAbortedException) ?? rankZeroError;
    }

    static T[] WaitAll<T>(Task<T>[] tasks)
    {
        try
        {
            return Task.WhenAll(tasks).GetAwaiter().GetResult();
        }
        catch
        {
            Task.WhenAll(tasks).ContinueWith(_ => { }).Wait();
            throw RootCause(tasks.First(task => task.IsFaulted).Exception!.InnerExceptions[0], tasks);
        }
    }

    void DisposeWorkers()
    {
        foreach (var worker in _workers) worker.Dispose();
    }

    public void Dispose()
    {
        DisposeWorkers();
        _group.Dispose();
    }

    /// One peer rank's thread: loads its model, then runs posted work in order until disposed, then disposes the model.
    sealed class Worker : IDisposable
    {
        readonly BlockingCollection<Action> _queue = new();
        readonly TaskCompletionSource<bool> _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        readonly Thread _thread;

        public Worker(int rank, Func<int, LoadedModel> load)
        {
            Rank = rank;
            _thread = new Thread(() => Run(load)) { Name = $"tensor-parallel-rank-{rank}", IsBackground = true };
            _thread.Start();
        }

        public int Rank { get; }
        public LoadedModel? Model { get; private set; }
        public Task<bool> Loaded => _loaded.Task;

        public Task<T> Post<T>(Func<LoadedModel, T> work)
        {
            var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            _queue.Add(() =>
            {
                try
                {
                    using var scope = NewDisposeScope();
                    done.SetResult(work(Model!));
                }
                catch (Exception error)
                {
                    done.SetException(error);
                }
            });
            return done.Task;
        }

        void Run(Func<int, LoadedModel> load)
        {
            try
            {
                Model = load(Rank);
                _loaded.SetResult(true);
            }
            catch (Exception error)
            {
                _loaded.SetException(error);
                return;
            }
            foreach (var work in _queue.GetConsumingEnumerable()) work();
            Model.Dispose();
        }

        public void Dispose()
        {
            _queue.CompleteAdding();
            _thread.Join();
            _queue.Dispose();
        }
    }
}

/// A collective failed because another rank of the group failed in the same step (the group was aborted).
internal sealed class TensorParallelAbortedException(string message) : Exception(message);
