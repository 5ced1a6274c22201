namespace Serving.LoadGen.Clients;

/// What a server says about the model it serves and its KV cache; null where the server does not say.
internal sealed record ServerInfo
{
    public required string ModelId { get; init; }
    public int? MaxModelLen { get; init; }
    public int? VocabSize { get; init; }
    public int? NumAttentionHeads { get; init; }
    public int? NumKVHeads { get; init; }
    public int? HeadDim { get; init; }
    public string? Dtype { get; init; }
    public int? BlockSize { get; init; }
    public long? KVBytesPerToken { get; init; }
    public long? KVCapacityTokens { get; init; }
}
