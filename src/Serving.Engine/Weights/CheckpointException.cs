namespace Serving.Engine.Weights;

/// A safetensors file or the checkpoint's tensors are unusable (corrupt header, missing weight, wrong shape);
/// the message names the file and the tensor.
public sealed class CheckpointException(string message, Exception? inner = null) : ModelLoadException(message, inner);
