using System.Buffers.Binary;
using System.Text;
using Serving.Engine.Tests.Support;
using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Weights;

public sealed class SafetensorsTests
{
    [Fact]
    public void WriterAndReaderRoundTripEveryFloatTypeAndMetadata()
    {
        using var dir = new TempDirectory();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a.f32"] = Serving.Engine.HeldScalars.Range(0, 12, dtype: float32).view(3, 4),
            ["b.bf16"] = linspace(-2, 2, 10).to_type(ScalarType.BFloat16),
            ["c.f16"] = linspace(-1, 1, 6).to_type(ScalarType.Float16).view(2, 3),
            ["d.empty"] = zeros(0, 5),
        };
        var path = dir.File("t.safetensors");
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Header.Metadata["format"]);
        Assert.Equal(0, file.Header.DataStart % 8);
        foreach (var (name, expected) in tensors)
        {
            var read = file.Read(name);
            Assert.Equal(expected.dtype, read.dtype);
            Assert.Equal(expected.shape, read.shape);
            Assert.True(read.eq(expected).all().item<bool>(), name);
        }
    }

    [Fact]
    public void ReadsTheFixtureCheckpoint()
    {
        using var checkpoint = SafetensorsCheckpoint.Open(Fixtures.Dir("llama-gqa"));
        var info = checkpoint.Info("model.layers.0.self_attn.k_proj.weight");
        Assert.Equal([16L, 64L], info.Shape);
        Assert.Equal(ScalarType.Float32, info.DType);
        Assert.Equal(3 + 2 * 9, checkpoint.TensorNames.Count);  // embeddings, norm, lm_head + 9 per layer
    }

    /// A tensor-parallel rank reads a slice (rows of a matrix, columns of a matrix, part of a vector) and gets exactly
    /// those entries of the whole tensor, in every stored dtype.
    [Theory]
    [InlineData(0, 3, 5)]
    [InlineData(1, 1, 2)]
    [InlineData(1, 0, 4)]
    [InlineData(0, 0, 6)]
    public void ASliceReadsThoseEntriesOfTheWholeTensor(int dim, long start, long length)
    {
        using var dir = new TempDirectory();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["m.f32"] = Serving.Engine.HeldScalars.Range(0, 24, dtype: float32).view(6, 4),
            ["m.bf16"] = Serving.Engine.HeldScalars.Range(0, 24, dtype: float32).view(6, 4).to_type(ScalarType.BFloat16),
            ["v.f16"] = Serving.Engine.HeldScalars.Range(0, 6, dtype: float32).to_type(ScalarType.Float16),
        };
        var path = dir.File(SafetensorsCheckpoint.SingleFile);
        SafetensorsWriter.Write(path, tensors);
        using var checkpoint = SafetensorsCheckpoint.Open(dir.Path);
        foreach (var (name, whole) in tensors.Where(pair => dim < pair.Value.dim()))
        {
            var slice = new TensorSlice(dim, start, Math.Min(length, whole.shape[dim] - start));
            var read = checkpoint.Read(name, slice);
            Assert.True(read.equal(whole.narrow(dim, slice.Start, slice.Length)).all().item<bool>(), name);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => checkpoint.Read("m.f32", new TensorSlice(1, 3, 2)));
    }

    [Fact]
    public void ShardedCheckpointsResolveEachTensorToItsShard()
    {
        using var dir = new TempDirectory();
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), new Dictionary<string, Tensor> { ["x"] = ones(2, 2) });
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), new Dictionary<string, Tensor> { ["y"] = ones(3) * 7f });
        File.WriteAllText(dir.File(SafetensorsCheckpoint.IndexFile),
            """{"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}""");
        using var checkpoint = SafetensorsCheckpoint.Open(dir.Path);
        Assert.Equal(4f, checkpoint.Read("x").sum().item<float>());
        Assert.Equal(21f, checkpoint.Read("y").sum().item<float>());
        Assert.Contains("'z'", Assert.Throws<CheckpointException>(() => checkpoint.Read("z")).Message);
    }

    [Fact]
    public void AnIndexNamingATensorItsShardLacksIsRefused()
    {
        using var dir = new TempDirectory();
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(dir.File("a.safetensors"), new Dictionary<string, Tensor> { ["x"] = ones(1) });
        File.WriteAllText(dir.File(SafetensorsCheckpoint.IndexFile), """{"weight_map": {"w": "a.safetensors"}}""");
        var error = Assert.Throws<CheckpointException>(() => SafetensorsCheckpoint.Open(dir.Path));
        Assert.Contains("'w'", error.Message);
    }

    public static TheoryData<string, string> CorruptHeaders => new()
    {
        { "length-past-end", "does not fit the file" },
        { "not-json", "not valid UTF-8 JSON" },
        { "offsets-past-end", "outside the data section" },
        { "size-mismatch", "need" },
        { "too-short", "shorter than the 8-byte header length" },
    };

    [Theory, MemberData(nameof(CorruptHeaders))]
    public void CorruptHeadersAreRefusedNamingTheFileAndTheProblem(string corruption, string expected)
    {
        using var dir = new TempDirectory();
        var path = dir.File("broken.safetensors");
        File.WriteAllBytes(path, Corrupt(corruption));
        var error = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains("broken.safetensors", error.Message);
        Assert.Contains(expected, error.Message);
    }

    static byte[] Corrupt(string corruption) => corruption switch
    {
        "length-past-end" => WithHeader("{}", declaredLength: 4096),
        "not-json" => WithHeader("{\"a\": {\"dtype\": \"F32\", "),
        "offsets-past-end" => WithHeader("""{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", dataBytes: 8),
        "size-mismatch" => WithHeader("""{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}""", dataBytes: 16),
        _ => [1, 2, 3],
    };

    static byte[] WithHeader(string json, ulong? declaredLength = null, int dataBytes = 0)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        return bytes;
    }
}
