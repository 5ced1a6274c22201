namespace Serving.Engine.Weights;

/// Reported after each tensor is loaded, for progress bars and logs on large checkpoints.
public sealed record WeightLoadProgress(string TensorName, int TensorsLoaded, int TotalTensors, long BytesLoaded, long TotalBytes)
{
    public double Fraction => TotalBytes == 0 ? 1.0 : (double)BytesLoaded / TotalBytes;
}
