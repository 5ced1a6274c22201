using Serving.Grpc.V1;
using Serving.Server.Generation;

namespace Serving.Server.Grpc;

/// The served model as serving.v1.ModelInfo: its shape and its KV cache, as the engine reports them.
internal static class ModelInfos
{
    /// name: the served name the info is listed under (default: the first).
    public static ModelInfo Of(ServingContext serving, string? name = null)
    {
        var info = serving.Engine.Info;
        var adapter = serving.LoraAdapters.FirstOrDefault(a => a.Name == name);
        return new ModelInfo
        {
            Id = name ?? serving.ModelName,
            Root = adapter?.Path ?? serving.Options.ResolvedModel,
            Parent = adapter is null ? "" : adapter.BaseModelName ?? serving.ModelName,
            Architecture = info.Architecture,
            ModelType = info.ModelType,
            NumLayers = info.NumLayers,
            HiddenSize = info.HiddenSize,
            NumAttentionHeads = info.NumAttentionHeads,
            NumKeyValueHeads = info.NumKeyValueHeads,
            HeadDim = info.HeadDim,
            VocabSize = info.VocabSize,
            MaxModelLen = info.MaxModelLen,
            Dtype = info.Dtype,
            KvCacheDtype = info.KVCacheDtype,
            TensorParallelSize = info.TensorParallelSize,
            Device = info.Device,
            BlockSize = info.BlockSize,
            NumKvBlocks = info.NumKVBlocks,
            KvBytesPerToken = info.KVBytesPerToken,
            KvCapacityTokens = info.KVCapacityTokens,
            Runner = Serving.Engine.Pooling.RunnerTypes.Name(info.Runner),
            EmbeddingSize = info.EmbeddingSize,
            Labels = { info.Labels },
        };
    }
}
