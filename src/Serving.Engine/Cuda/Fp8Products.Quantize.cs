using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

// The quantizing kernels' launches (fp8_quantize.cu): a product's input at each step, a weight once.
internal sealed unsafe partial class Fp8Products
{
    // x (rows, cols) as e4m3 bytes (rows, cols) and a scale per row (rows) float32 from the row's largest magnitude,
    // both new tensors in the caller's scope: one block a row
    (Tensor Values, Tensor Scales) QuantizeRows(Tensor x) => QuantizeByRow(x, null);

    // weight (rows, cols) as e4m3 bytes and one scale from its largest magnitude
    (Tensor Values, Tensor Scale, Fp8Scaling Scaling) QuantizePerTensor(Tensor weight)
    {
        var (values, scale) = Quantize(weight);
        return (values, scale, Fp8Scaling.PerTensor);
    }

    // weight (rows, cols) as e4m3 bytes by the given scales (rows), and its scale: the one they all are (1), or them
    (Tensor Values, Tensor Scale, Fp8Scaling Scaling) QuantizeScaledRows(Tensor weight, Tensor scales)
    {
        scales = scales.to(ScalarType.Float32, _torchDevice).contiguous();
        var (values, _) = QuantizeByRow(weight, scales);
        return scales.eq(scales.narrow(0, 0, 1)).all().item<bool>() ? (values, scales.narrow(0, 0, 1).clone(), Fp8Scaling.PerTensor)
            : (values, scales.clone(), Fp8Scaling.PerChannel);
    }

    // weight (rows, cols) as e4m3 bytes by the given block scales (BlockScales'), and them on the device
    (Tensor Values, Tensor Scale, Fp8Scaling Scaling) QuantizeScaledBlocks(Tensor weight, Tensor blockScales)
    {
        var scales = blockScales.to(_torchDevice);
        (weight, var ld) = AlignedRows(weight);
        var (rows, cols, scaleLd) = (weight.size(0), (int)weight.size(1), (int)scales.size(1));
        var values = empty(rows, cols, ScalarType.Byte, _torchDevice);
        var (xPtr, scalesPtr, valuesPtr) = (TensorPointer.Of(weight), TensorPointer.Of(scales), TensorPointer.Of(values));
        _device.MakeCurrent();
        void** args = stackalloc void*[] { &xPtr, &cols, &ld, &scalesPtr, &scaleLd, &valuesPtr };
        CudaDriver.Launch(_quantizeScaledBlocks, ((uint)rows, 1, 1), ThreadsForRow(cols), 0, CurrentStream, args, _dependentLaunch);
        return (values, scales, Fp8Scaling.PerBlock);
    }

    // x (x rows, cols) as e4m3 bytes (rows, cols; rows past x's zeros) and a scale per row and ScaleBlock columns
    // (cols / ScaleBlock, rows), a group's rows contiguous (cuBLASLt's VEC128 layout), float32 from their largest
    // magnitude, both new tensors in the caller's scope: one block a row
    (Tensor Values, Tensor Scales) QuantizeRowGroups(Tensor x, long rows)
    {
        (x, var ld) = AlignedRows(x);
        var (xRows, outRows, cols) = ((int)x.size(0), (int)rows, (int)x.size(1));
        var values = empty(outRows, cols, ScalarType.Byte, _torchDevice);
        var scales = empty(cols / ScaleBlock, outRows, ScalarType.Float32, _torchDevice);
        var (xPtr, scalesPtr, valuesPtr) = (TensorPointer.Of(x), TensorPointer.Of(scales), TensorPointer.Of(values));
        _device.MakeCurrent();
        void** args = stackalloc void*[] { &xPtr, &xRows, &outRows, &cols, &ld, &scalesPtr, &valuesPtr };
        CudaDriver.Launch(_quantizeRowGroups, ((uint)outRows, 1, 1), ThreadsForRow(cols), 0, CurrentStream, args, _dependentLaunch);
        return (values, scales);
    }

    // threads of a block that takes one row of cols elements: a vector each, whole warps, at most 1024
    static uint ThreadsForRow(int cols) => (uint)Math.Clamp((cols / Vector + 31) / 32 * 32, 32, 1024);

    // fp8_quantize_rows (scales null: found and returned) or fp8_quantize_scaled_rows (scales given, returned as given)
    (Tensor Values, Tensor Scales) QuantizeByRow(Tensor x, Tensor? given)
    {
        (x, var ld) = AlignedRows(x);
        var (rows, cols) = (x.size(0), (int)x.size(1));
        var values = empty(rows, cols, ScalarType.Byte, _torchDevice);
        var scales = given ?? empty(rows, ScalarType.Float32, _torchDevice);
        var (xPtr, scalesPtr, valuesPtr) = (TensorPointer.Of(x), TensorPointer.Of(scales), TensorPointer.Of(values));
        _device.MakeCurrent();
        void** args = stackalloc void*[] { &xPtr, &cols, &ld, &scalesPtr, &valuesPtr };
        CudaDriver.Launch(given is null ? _quantizeRows : _quantizeScaledRows, ((uint)rows, 1, 1), ThreadsForRow(cols), 0, CurrentStream, args, _dependentLaunch);
        return (values, scales);
    }

    // x (rows, cols) as e4m3 bytes (rows, cols) and its scale (1) float32, both new tensors in the caller's scope
    (Tensor Values, Tensor Scale) Quantize(Tensor x)
    {
        (x, var ld) = AlignedRows(x);
        var (rows, cols) = (x.size(0), (int)x.size(1));
        var totalVectors = rows * cols / Vector;
        var values = empty(rows, cols, ScalarType.Byte, _torchDevice);
        var scale = empty(1, ScalarType.Float32, _torchDevice);
        var (xPtr, scalePtr, valuesPtr) = (TensorPointer.Of(x), TensorPointer.Of(scale), TensorPointer.Of(values));
        _device.MakeCurrent();
        if (totalVectors <= SmallVectors)
        {
            void** smallArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &scalePtr, &valuesPtr };
            CudaDriver.Launch(_quantizeSmall, (1, 1, 1), SmallThreads, 0, CurrentStream, smallArgs, _dependentLaunch);
            return (values, scale);
        }
        var blocksNeeded = (totalVectors + Threads - 1) / Threads;
        var partialBlocks = (int)Math.Min(blocksNeeded, Math.Min(MaxPartials, 4L * _device.MultiprocessorCount));
        var partials = empty(partialBlocks, ScalarType.Float32, _torchDevice);
        var partialsPtr = TensorPointer.Of(partials);
        void** absmaxArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &partialsPtr };
        CudaDriver.Launch(_absmax, ((uint)partialBlocks, 1, 1), Threads, 0, CurrentStream, absmaxArgs, _dependentLaunch);
        var quantizeBlocks = (uint)Math.Min(blocksNeeded, 16L * _device.MultiprocessorCount);
        void** quantizeArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &partialsPtr, &partialBlocks, &scalePtr, &valuesPtr };
        CudaDriver.Launch(_quantize, (quantizeBlocks, 1, 1), Threads, 0, CurrentStream, quantizeArgs, _dependentLaunch);
        partials.Dispose();   // freed in stream order: the caching allocator reuses it only for work queued after
        return (values, scale);
    }
}
