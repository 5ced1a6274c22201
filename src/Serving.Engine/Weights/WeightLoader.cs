using Serving.Engine.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Fills a model's parameters from a checkpoint one tensor at a time: read (stored dtype, CPU), then copy_ into the
/// parameter's rows, which converts dtype and moves to the device in one step. Peak extra memory is one tensor. A
/// tensor-parallel rank reads only its part of each tensor (ModelShard.Copies): rows, or columns, never the whole.
/// Parameters the model leaves unallocated (IUnallocatedParameters) are allocated as the loader reaches them and
/// handed back, with their FP8 scales, once full.
internal static class WeightLoader
{
    /// quantization: the checkpoint's (config.json), for how its quantized weights are dequantized (QuantizedWeights).
    /// Returns, for each parameter whose every row came from FP8 checkpoint tensors scaled per tensor, per row or per
    /// 128 x 128 block, the scales its FP8 values were stored with, by row and group of 128 columns (Fp8Weights.
    /// StoredScales: (rows, 1), or (rows, ceil(columns / 128)) for a checkpoint of such blocks; float32, CPU, the caller
    /// owns them), so that it can be served in FP8 as stored; an unallocated parameter's go to it instead
    /// (IUnallocatedParameters.Loaded).
    /// keepFp8Scales false: no scales are kept (none returned, none handed over): where FP8 products cannot serve
    /// them, the scales would be host memory for nothing (a 70B checkpoint's 128 x 128 blocks by row: ~2 GB).
    public static Dictionary<string, Tensor> Load(nn.Module model, SafetensorsCheckpoint checkpoint, IReadOnlyList<WeightBinding> bindings, ModelShard shard,
        IProgress<WeightLoadProgress>? progress, Config.WeightQuantization? quantization = null, IUnallocatedParameters? unallocated = null,
        bool keepFp8Scales = true)
    {
        var fp8Scales = new Dictionary<string, Tensor>();   // NaN where no FP8 tensor filled them
        try
        {
            Fill(model, checkpoint, bindings, shard, progress, quantization, unallocated, keepFp8Scales ? fp8Scales : null);
        }
        catch
        {
            foreach (var scales in fp8Scales.Values) scales.Dispose();
            throw;
        }
        foreach (var (name, scales) in fp8Scales.ToArray())
            if (Whole(scales) is null) fp8Scales.Remove(name);
        return fp8Scales;
    }

    // scales every row of which an FP8 tensor filled; else null (they are disposed)
    static Tensor? Whole(Tensor scales)
    {
        using (var scope = NewDisposeScope())
            if (!scales.isnan().any().item<bool>()) return scales;
        scales.Dispose();
        return null;
    }

    // every parameter's rows from the checkpoint; the scales of its FP8 tensors into fp8Scales (an unallocated
    // parameter's handed to it with the parameter)
    static void Fill(nn.Module model, SafetensorsCheckpoint checkpoint, IReadOnlyList<WeightBinding> bindings, ModelShard shard,
        IProgress<WeightLoadProgress>? progress, Config.WeightQuantization? quantization, IUnallocatedParameters? unallocated,
        Dictionary<string, Tensor>? fp8Scales)
    {
        using var notFilled = float.NaN.ToScalar();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        CheckCoverage(parameters, bindings, shard, unallocated);
        // an unallocated parameter's bindings still to load
        var pending = bindings.Where(binding => unallocated?.ShapeOf(binding.ParameterName) is not null)
            .GroupBy(binding => binding.ParameterName).ToDictionary(g => g.Key, g => g.Count());
        var totalBytes = bindings.Sum(binding => QuantizedWeights.StoredBytes(checkpoint, binding.CheckpointName));
        long loadedBytes = 0;
        using var noGrad = no_grad();
        // rows no checkpoint data fills on this rank (vocabulary padding, other ranks' biases) must be zero
        if (shard.Size > 1)
            foreach (var parameter in parameters.Values) parameter.zero_();
        for (var i = 0; i < bindings.Count; i++)
        {
            var binding = bindings[i];
            var parameter = parameters[binding.ParameterName];
            var isPending = pending.TryGetValue(binding.ParameterName, out var bindingsLeft);
            if (isPending && parameter.NumberOfElements == 0)
            {
                unallocated!.Allocate(binding.ParameterName);
                if (shard.Size > 1) parameter.zero_();
            }
            using var dequantized = QuantizedWeights.Read(checkpoint, binding.CheckpointName, quantization);
            using var storedScales = fp8Scales is null ? null : QuantizedWeights.Fp8StoredScales(checkpoint, binding.CheckpointName, quantization);
            // a group of columns each where the checkpoint has 128 x 128 blocks (tensors scaled per row fill them all)
            var groups = quantization?.BlockSize is [Fp8Weights.GroupColumns, Fp8Weights.GroupColumns]
                ? (parameter.shape[^1] + Fp8Weights.GroupColumns - 1) / Fp8Weights.GroupColumns : 1;
            var parameterScales = fp8Scales is null || storedScales is null || parameter.dim() != 2 || binding.StoredInputMajor ? null
                : fp8Scales.TryGetValue(binding.ParameterName, out var known) ? known
                : fp8Scales[binding.ParameterName] = full(parameter.shape[0], groups, notFilled, ScalarType.Float32).DetachFromDisposeScope();
            foreach (var copy in shard.Copies(binding))
            {
                using var scope = NewDisposeScope();
                var part = dequantized is null ? checkpoint.Read(binding.CheckpointName, copy.Slice)
                    : copy.Slice.Of(dequantized);
                if (binding.StoredInputMajor) part = part.transpose(-1, -2);
                part = part.reshape(AsParameterRows(part.shape, parameter.dim()));
                parameter.narrow(0, copy.DestinationRow, part.shape[0]).copy_(part);
                if (parameterScales is null) continue;
                var rows = parameterScales.narrow(0, copy.DestinationRow, part.shape[0]);
                var scales = ScalesOf(storedScales!, copy.Slice, binding.Shape[^1]);
                // scales not by the parameter's groups leave it in the model's type
                if (scales is not null && (scales.shape[1] == 1 || scales.shape[1] == rows.shape[1])) rows.copy_(scales);
                else rows.fill_(notFilled);
            }
            if (isPending && (pending[binding.ParameterName] = bindingsLeft - 1) == 0)
                unallocated!.Loaded(binding.ParameterName, fp8Scales is not null && fp8Scales.Remove(binding.ParameterName, out var scales) ? Whole(scales) : null);
            loadedBytes += QuantizedWeights.StoredBytes(checkpoint, binding.CheckpointName);
            progress?.Report(new WeightLoadProgress(binding.CheckpointName, i + 1, bindings.Count, loadedBytes, totalBytes));
        }
    }

    /// The scales (Fp8Weights.StoredScales) of the part of a tensor of columns columns a slice takes: its rows' (a row
    /// slice), or every row's (a column slice, a row-parallel rank's): all where there is one a row, else the groups of
    /// its columns, where it starts and ends on a group's edge (null where it does not).
    static Tensor? ScalesOf(Tensor scales, TensorSlice slice, long columns)
    {
        if (slice.Dim == 0) return slice.Of(scales);
        if (scales.shape[1] == 1) return scales;
        var ends = slice.Start + slice.Length;
        if (slice.Start % Fp8Weights.GroupColumns != 0 || (ends % Fp8Weights.GroupColumns != 0 && ends != columns)) return null;
        return scales.narrow(1, slice.Start / Fp8Weights.GroupColumns, (slice.Length + Fp8Weights.GroupColumns - 1) / Fp8Weights.GroupColumns);
    }

    /// A checkpoint tensor with more dimensions than its parameter fills the parameter's rows with its leading dimensions
    /// flattened: GraniteMoE stores its experts stacked, (experts, 2F, hidden), where the model keeps (experts x 2F, hidden).
    static long[] AsParameterRows(long[] shape, long parameterDims) =>
        shape.Length <= parameterDims ? shape
            : [shape.Take(shape.Length - (int)parameterDims + 1).Aggregate(1L, (a, b) => a * b), .. shape.Skip(shape.Length - (int)parameterDims + 1)];

    /// Invariant of the layout: the bindings of each parameter tile its rows exactly, with matching trailing dims (a
    /// rank's parts tile the rows it does not leave zero); an unallocated parameter's, the shape it will take.
    static void CheckCoverage(Dictionary<string, Parameter> parameters, IReadOnlyList<WeightBinding> bindings, ModelShard shard,
        IUnallocatedParameters? unallocated)
    {
        var byParameter = bindings.GroupBy(binding => binding.ParameterName).ToDictionary(g => g.Key, g => g.ToArray());
        foreach (var (name, parameter) in parameters)
        {
            var shape = unallocated?.ShapeOf(name) ?? parameter.shape;
            var parts = byParameter.TryGetValue(name, out var found)
                ? found.SelectMany(binding => shard.Copies(binding).Select(copy => AsParameterRows(binding.InParameterOrder(copy.Slice.ShapeIn(binding.Shape)), shape.Length))).ToArray()
                : [];
            var rows = parts.Sum(part => part[0]) + shard.ZeroRows(name, shape[0]);
            var trailingOk = found is not null && parts.All(part => part.Skip(1).SequenceEqual(shape.Skip(1)));
            if (rows != shape[0] || !trailingOk)
                throw new InvalidOperationException($"checkpoint layout does not cover parameter '{name}' {SafetensorsTensorInfo.FormatShape(shape)}");
        }
        foreach (var name in byParameter.Keys.Where(name => !parameters.ContainsKey(name)))
            throw new InvalidOperationException($"checkpoint layout binds unknown parameter '{name}'");
    }
}
