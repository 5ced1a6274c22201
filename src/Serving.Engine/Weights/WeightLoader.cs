using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Fills a model's parameters from a checkpoint one tensor at a time: read (stored dtype, CPU), then copy_ into the
/// parameter's rows, which converts dtype and moves to the device in one step. Peak extra memory is one tensor.
internal static class WeightLoader
{
    public static void Load(nn.Module model, SafetensorsCheckpoint checkpoint, IReadOnlyList<WeightBinding> bindings,
        IProgress<WeightLoadProgress>? progress)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        CheckCoverage(parameters, bindings);
        var totalBytes = bindings.Sum(binding => checkpoint.Info(binding.CheckpointName).NumBytes);
        long loadedBytes = 0;
        using var noGrad = no_grad();
        for (var i = 0; i < bindings.Count; i++)
        {
            var binding = bindings[i];
            using (var scope = NewDisposeScope())
            {
                var source = checkpoint.Read(binding.CheckpointName);
                parameters[binding.ParameterName].narrow(0, binding.RowOffset, binding.Shape[0]).copy_(source);
            }
            loadedBytes += checkpoint.Info(binding.CheckpointName).NumBytes;
            progress?.Report(new WeightLoadProgress(binding.CheckpointName, i + 1, bindings.Count, loadedBytes, totalBytes));
        }
    }

    /// Invariant of the layout: the bindings of each parameter tile its rows exactly, with matching trailing dims.
    static void CheckCoverage(Dictionary<string, Parameter> parameters, IReadOnlyList<WeightBinding> bindings)
    {
        var byParameter = bindings.GroupBy(binding => binding.ParameterName).ToDictionary(g => g.Key, g => g.ToArray());
        foreach (var (name, parameter) in parameters)
        {
            var rows = byParameter.TryGetValue(name, out var parts) ? parts.Sum(part => part.Shape[0]) : 0;
            var trailingOk = parts?.All(part => part.Shape.Skip(1).SequenceEqual(parameter.shape.Skip(1))) ?? false;
            if (rows != parameter.shape[0] || !trailingOk)
                throw new InvalidOperationException($"checkpoint layout does not cover parameter '{name}' {SafetensorsTensorInfo.FormatShape(parameter.shape)}");
        }
        foreach (var name in byParameter.Keys.Where(name => !parameters.ContainsKey(name)))
            throw new InvalidOperationException($"checkpoint layout binds unknown parameter '{name}'");
    }
}
