using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// One forward step captured as a CUDA graph: every layer, the attention and the LM head in one launch. It reads its
/// metadata from the fused backend's step buffers (fixed addresses), so a later step of the same shape (tokens,
/// sequences, which of them decode, attention split) replays it with its own tokens, positions, slots and block
/// tables; the logits land in the same tensor each time. Owns the graph and the captured step's tensors.
internal sealed class CapturedStep : IDisposable
{
    readonly CudaBackend _backend;
    readonly DecoderStep _step;
    readonly CudaGraph _graph;
    readonly StepInputs _shape;

    CapturedStep(CudaBackend backend, DecoderStep step, CudaGraph graph, StepInputs shape, Tensor logits) =>
        (_backend, _step, _graph, _shape, Logits) = (backend, step, graph, shape, logits);

    /// (numLogits, vocab) float32: the output of the last replay (or of the capture).
    public Tensor Logits { get; }

    public static CapturedStep Capture(CausalLM model, CudaBackend backend, StepInputs inputs, PagedKVCache cache)
    {
        if (!inputs.IsDecode) throw new ArgumentException("only decode steps are captured (prefill steps carry host-built context slots)");
        var step = backend.Begin(inputs, cache);
        // one eager run first: cuBLAS creates its handle and workspace outside the capture
        using (var scope = NewDisposeScope()) model.Forward(step, allRows: false);
        var graph = new CudaGraph();
        graph.BeginCapture();
        var logits = model.Forward(step, allRows: false).DetachFromDisposeScope();
        graph.EndCapture();
        return new CapturedStep(backend, step, graph, inputs, logits);
    }

    /// Uploads this step's metadata and replays the graph on the backend's stream; refuses a step of another shape.
    public Tensor Replay(StepInputs inputs)
    {
        if (!SameShape(inputs))
            throw new ArgumentException("a captured step replays only steps of its own shape (tokens, sequences, decodes, attention split)");
        _backend.Stream.MakeCurrent();
        _backend.Buffers.Upload(inputs, Enumerable.Range(0, inputs.NumSeqs).Where(s => inputs.QueryLength(s) == 1).ToArray());
        _graph.Replay();
        return Logits;
    }

    bool SameShape(StepInputs inputs) =>
        inputs.NumTokens == _shape.NumTokens && inputs.NumSeqs == _shape.NumSeqs
        && inputs.LogitRows.SequenceEqual(_shape.LogitRows)
        && Enumerable.Range(0, inputs.NumSeqs).All(s => inputs.QueryLength(s) == _shape.QueryLength(s))
        && Plan(inputs) == Plan(_shape);

    DecodeAttentionPlan? Plan(StepInputs inputs)
    {
        var decodes = Enumerable.Range(0, inputs.NumSeqs).Where(s => inputs.QueryLength(s) == 1).ToArray();
        return decodes.Length == 0 ? null : _backend.Kernels.PlanDecode(decodes.Length, decodes.Max(d => inputs.ContextLengths[d]));
    }

    public void Dispose()
    {
        _graph.Dispose();
        Logits.Dispose();
        _step.Dispose();
    }
}
