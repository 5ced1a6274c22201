using System.Text.Json;
using Serving.Server.Options;

namespace Serving.Server.OpenAI.Responses;

/// A stored response: what GET /v1/responses/{id} answers, the input it was given, and its whole conversation
/// (a continued response's history, then its input and output) for a response that continues it.
internal sealed record StoredResponse(ResponseObject Response, IReadOnlyList<ResponseItem> Input, IReadOnlyList<ResponseItem> Conversation)
{
    /// Its size as JSON: what it counts against the store's memory.
    public long Bytes { get; } = JsonSerializer.SerializeToUtf8Bytes(Conversation, OpenAIJsonContext.Default.IReadOnlyListResponseItem).LongLength
        + JsonSerializer.SerializeToUtf8Bytes(Response, OpenAIJsonContext.Default.ResponseObject).LongLength;
}

/// The responses kept for GET /v1/responses/{id} and previous_response_id, in process memory (as vLLM keeps them):
/// at most --max-stored-response-bytes of them, the least recently used evicted first. A restart forgets them all.
internal sealed class ResponseStore(ServerOptions options)
{
    readonly Lock _lock = new();
    readonly Dictionary<string, LinkedListNode<StoredResponse>> _byId = [];
    readonly LinkedList<StoredResponse> _recent = new();   // most recently used first
    long _bytes;

    /// Keeps a response; false when storing is off or it alone is larger than the store.
    public bool TrySave(StoredResponse stored)
    {
        if (stored.Bytes > options.MaxStoredResponseBytes) return false;
        lock (_lock)
        {
            Remove(stored.Response.Id);
            _byId[stored.Response.Id] = _recent.AddFirst(stored);
            _bytes += stored.Bytes;
            while (_bytes > options.MaxStoredResponseBytes) Remove(_recent.Last!.Value.Response.Id);
            return true;
        }
    }

    public StoredResponse? Find(string id)
    {
        lock (_lock)
        {
            if (!_byId.TryGetValue(id, out var node)) return null;
            _recent.Remove(node);
            _recent.AddFirst(node);
            return node.Value;
        }
    }

    public bool Delete(string id)
    {
        lock (_lock) return Remove(id);
    }

    bool Remove(string id)
    {
        if (!_byId.Remove(id, out var node)) return false;
        _recent.Remove(node);
        _bytes -= node.Value.Bytes;
        return true;
    }
}
