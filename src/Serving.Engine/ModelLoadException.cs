namespace Serving.Engine;

/// Loading a checkpoint failed: the message names the file, field or tensor at fault.
/// ModelConfigException (config.json) and CheckpointException (safetensors) derive from it.
public class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);
