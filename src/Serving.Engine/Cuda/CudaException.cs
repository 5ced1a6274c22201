namespace Serving.Engine.Cuda;

/// A CUDA driver or NVRTC call failed; the message carries the call and the library's own error text.
public sealed class CudaException(string message) : Exception(message);
