using System.IO.MemoryMappedFiles;
using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// One safetensors file, memory-mapped read-only: tensors are copied out one at a time, so reading a
/// checkpoint never holds more than the mapped file (paged by the OS) plus the tensor being read.
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// Bytes copied per span (a Span is limited to int.MaxValue bytes).
    const long CopyChunkBytes = 1L << 30;

    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;

    public string Path { get; }
    public SafetensorsHeader Header { get; }
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors => Header.Tensors;

    SafetensorsFile(string path, SafetensorsHeader header, MemoryMappedFile map, MemoryMappedViewAccessor view)
    {
        Path = path;
        Header = header;
        _map = map;
        _view = view;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + view.PointerOffset;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"safetensors file not found: {path}");
        SafetensorsHeader header;
        using (var stream = File.OpenRead(path)) header = SafetensorsHeader.Read(path, stream);
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        return new SafetensorsFile(path, header, map, view);
    }

    /// A new CPU tensor in the stored dtype holding the named tensor; the caller owns (disposes) it.
    public Tensor Read(string name)
    {
        var info = Tensors.TryGetValue(name, out var found) ? found
            : throw new CheckpointException($"{System.IO.Path.GetFileName(Path)}: no tensor '{name}'");
        var tensor = empty(info.Shape, info.DType, CPU);
        if (info.NumElements > 0) CopyInto(tensor, _base + Header.DataStart + info.Begin);
        return tensor;
    }

    /// A new CPU tensor holding only a slice of the named tensor: only the slice's bytes are read from the file (one
    /// contiguous run for rows, one run per leading index for columns).
    internal Tensor Read(string name, TensorSlice slice)
    {
        var info = Tensors.TryGetValue(name, out var found) ? found
            : throw new CheckpointException($"{System.IO.Path.GetFileName(Path)}: no tensor '{name}'");
        if (slice.IsWhole(info.Shape)) return Read(name);
        var tensor = empty(slice.ShapeIn(info.Shape), info.DType, CPU);
        if (tensor.NumberOfElements == 0) return tensor;
        var runBytes = info.Shape.Skip(slice.Dim + 1).Aggregate((long)tensor.ElementSize, (product, dim) => product * dim); // one index along Dim
        var runs = info.Shape.Take(slice.Dim).Aggregate(1L, (product, dim) => product * dim);
        var source = _base + Header.DataStart + info.Begin + slice.Start * runBytes;
        if (runs == 1)
        {
            CopyInto(tensor, source);
            return tensor;
        }
        var (sourceStride, length) = (info.Shape[slice.Dim] * runBytes, slice.Length * runBytes);
        fixed (byte* target = tensor.bytes)
        {
            for (long run = 0; run < runs; run++)
                Buffer.MemoryCopy(source + run * sourceStride, target + run * length, length, length);
        }
        return tensor;
    }

    static void CopyInto(Tensor tensor, byte* source)
    {
        using var flat = tensor.view(-1);
        var elementSize = tensor.ElementSize;
        var chunkElements = CopyChunkBytes / elementSize;
        for (long start = 0; start < flat.shape[0]; start += chunkElements)
        {
            var count = Math.Min(chunkElements, flat.shape[0] - start);
            using var chunk = flat.narrow(0, start, count);
            new ReadOnlySpan<byte>(source + start * elementSize, (int)(count * elementSize)).CopyTo(chunk.bytes);
        }
    }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
