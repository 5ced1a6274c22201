using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// What every layer of one forward step shares: the pool, the attention metadata and the rotary angles.
internal sealed record StepContext(
    PagedKVCache Cache,
    AttentionMetadata Metadata,
    Tensor Cos,   // (numTokens, 1, headDim / 2)
    Tensor Sin);  // (numTokens, 1, headDim / 2)
