using static TorchSharp.torch;

namespace Serving.Engine.Distributed;

/// A tensor-parallel group whose ranks are threads of this process, for CPU (CI runs tensor parallelism with it):
/// each collective is an exchange through shared slots between two barriers. Every rank adds the inputs in rank
/// order, so every rank gets the same bits, as NCCL gives every rank the same result.
internal sealed class InProcessGroup : IDisposable
{
    readonly Tensor?[] _slots;
    Barrier _barrier;
    CancellationTokenSource _aborted = new();

    public InProcessGroup(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        _slots = new Tensor?[size];
        _barrier = new Barrier(size);
        Ranks = Enumerable.Range(0, size).Select(rank => (ICommunicator)new Member(this, rank)).ToArray();
    }

    /// One communicator per rank, in rank order; each is used by one thread.
    public IReadOnlyList<ICommunicator> Ranks { get; }

    public int Size => _slots.Length;

    // every rank's x in rank order, then fn on this rank; no rank's x is released before every rank has read them
    void Exchange(int rank, Tensor x, Action<Tensor[]> fn)
    {
        _slots[rank] = x;
        Wait();
        try
        {
            fn(_slots.Select(slot => slot!).ToArray());
        }
        finally
        {
            Wait();
        }
    }

    void Wait()
    {
        try
        {
            _barrier.SignalAndWait(_aborted.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TensorParallelAbortedException("the tensor-parallel group was aborted: another rank failed in this step");
        }
    }

    void Abort() => _aborted.Cancel();

    /// After an abort, once no rank is inside a collective any more: fresh barriers for the next step.
    public void Recover()
    {
        if (!_aborted.IsCancellationRequested) return;
        (_barrier, _aborted) = (Renew(_barrier, new Barrier(Size)), Renew(_aborted, new CancellationTokenSource()));
    }

    static T Renew<T>(T old, T fresh) where T : IDisposable
    {
        old.Dispose();
        return fresh;
    }

    public void Dispose()
    {
        _barrier.Dispose();
        _aborted.Dispose();
    }

    sealed class Member(InProcessGroup group, int rank) : ICommunicator
    {
        public int Rank => rank;
        public int Size => group.Size;

        public void AllReduce(Tensor x)
        {
            if (Size == 1) return;
            Tensor? sum = null;                    // the caller's dispose scope owns it, as any intermediate
            group.Exchange(rank, x, all =>
            {
                sum = all[0].clone();
                for (var r = 1; r < all.Length; r++) sum.add_(all[r], HeldScalars.One);
            });
            x.copy_(sum!);                         // every rank has read every input: overwriting ours is safe now
        }

        public void AllGather(Tensor input, Tensor output) =>
            group.Exchange(rank, input, all =>
            {
                for (var r = 0; r < all.Length; r++) output[r].copy_(all[r]);
            });

        public void Abort() => group.Abort();

        public void Dispose()
        {
        }
    }
}
