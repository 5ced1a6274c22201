using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Training.Training;

/// The serving decoder (the engine's CausalLM) under training. Float32 master weights are what the optimizer
/// updates and checkpoints hold; the forward and backward run in the compute dtype (bfloat16 on CUDA) on a copy
/// refreshed after every update, the mixed-precision recipe of Micikevicius et al. with bfloat16's range (no loss
/// scaling). In float32 the two are one model. Steps run on the dense backend: whole sequences, no KV pool.
internal sealed class TrainingModel : IDisposable
{
    readonly CausalLM _master;                 // float32
    readonly CausalLM _compute;                // compute dtype; _master itself when float32
    readonly FlatParameters _masterFlat;
    readonly FlatParameters _computeFlat;      // with gradients
    readonly DenseBackend _dense;

    TrainingModel(CausalLM master, ScalarType dtype, int sequenceLength)
    {
        _master = master;
        ModelParameters.MakeTrainable(master);
        if (dtype == ScalarType.Float32)
        {
            _compute = master;
            _computeFlat = _masterFlat = new FlatParameters(master, withGradients: true);
        }
        else
        {
            _masterFlat = new FlatParameters(master, withGradients: false);
            _compute = new CausalLM(master.Config, dtype, master.Device);
            ModelParameters.MakeTrainable(_compute);
            _computeFlat = new FlatParameters(_compute, withGradients: true);
            CopyMasterToCompute();
        }
        _dense = new DenseBackend(master.Config, sequenceLength, master.Device);
    }

    /// A new model of a config, initialised as transformers initialises Llama (RandomWeights.FillForTraining).
    public static TrainingModel Create(ModelConfig config, ScalarType dtype, Device device, int sequenceLength, long seed)
    {
        var master = new CausalLM(config, ScalarType.Float32, device);
        RandomWeights.FillForTraining(master, seed);
        return new TrainingModel(master, dtype, sequenceLength);
    }

    /// A checkpoint folder's weights (read in float32, checked as the engine checks them) as the starting point.
    public static TrainingModel Load(string directory, ScalarType dtype, Device device, int sequenceLength) =>
        new(ModelLoader.LoadDecoder(directory, "float32", device), dtype, sequenceLength);

    public ModelConfig Config => _master.Config;
    public ScalarType ComputeDtype => _compute.Dtype;
    public Device Device => _master.Device;
    /// The float32 model the optimizer updates (what a checkpoint writes).
    public CausalLM Master => _master;
    /// (numParameters) float32 master weights.
    public Tensor MasterWeights => _masterFlat.Values;
    public long NumParameters => _masterFlat.Count;

    /// 1 where weight decay applies: (numParameters) float32.
    public Tensor DecayMask() => _masterFlat.DecayMask();

    /// Mean next-token cross-entropy of windows (batch, length + 1): tokens 0..length-1 predict 1..length. The
    /// result carries the autograd graph; Backward fills the gradients.
    public Tensor Loss(Tensor windows)
    {
        var length = windows.shape[1] - 1;
        using var scope = NewDisposeScope();
        var logits = Logits(windows.narrow(1, 0, length));                                   // (batch * length, vocab) float32
        var targets = windows.narrow(1, 1, length).reshape(-1).to_type(ScalarType.Int64);
        return nn.functional.cross_entropy(logits, targets).MoveToOuterDisposeScope();
    }

    /// Sum of the next-token negative log-likelihoods of windows (batch, length + 1), without gradients: evaluation.
    public double SumNll(Tensor windows)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var length = windows.shape[1] - 1;
        var logits = Logits(windows.narrow(1, 0, length));
        var targets = windows.narrow(1, 1, length).reshape(-1).to_type(ScalarType.Int64);
        return nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
    }

    /// Logits of every position of tokens (batch, length): (batch * length, vocab) float32, rows in batch order.
    public Tensor Logits(Tensor tokens)
    {
        using var step = _dense.Begin(tokens);
        return _compute.Logits(step, allRows: true);
    }

    /// The gradients as float32 (numParameters): the compute model's, cast when it is not float32.
    public Tensor Gradients32() =>
        _computeFlat.Gradients!.dtype == ScalarType.Float32 ? _computeFlat.Gradients.alias() : _computeFlat.Gradients.to_type(ScalarType.Float32);

    public void ZeroGrad() => _computeFlat.ZeroGrad();

    /// After the master weights changed: the compute copy follows (nothing to do in float32).
    public void CopyMasterToCompute()
    {
        if (ReferenceEquals(_compute, _master)) return;
        using var noGrad = no_grad();
        _computeFlat.Values.copy_(_masterFlat.Values);
    }

    public void Dispose()
    {
        _dense.Dispose();
        if (!ReferenceEquals(_compute, _master))
        {
            _computeFlat.Dispose();
            _compute.Dispose();
        }
        _masterFlat.Dispose();
        _master.Dispose();
    }
}
