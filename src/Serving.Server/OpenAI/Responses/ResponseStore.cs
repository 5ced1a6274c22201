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
/// at most --max-stored-response-bytes of them, the least recently used evicted first, except background responses
/// still generating (pinned until their final save). A restart forgets them all.
internal sealed class ResponseStore(ServerOptions options)
{
    readonly Lock _lock = new();
    readonly Dictionary<string, LinkedListNode<StoredResponse>> _byId = [];
    readonly LinkedList<StoredResponse> _recent = new();   // most recently used first
    readonly HashSet<string> _pinned = [];
    long _bytes;

    /// Keeps a response (replacing one of its id); false when storing is off or it alone is larger than the store.
    /// pinned: not evicted until it is saved again unpinned (a background response's states before its last).
    public bool TrySave(StoredResponse stored, bool pinned = false)
    {
        if (stored.Bytes > options.MaxStoredResponseBytes) return false;
        var id = stored.Response.Id;
        lock (_lock)
        {
            Remove(id);
            _byId[id] = _recent.AddFirst(stored);
            _bytes += stored.Bytes;
            if (pinned) _pinned.Add(id);
            else _pinned.Remove(id);
            for (var node = _recent.Last; _bytes > options.MaxStoredResponseBytes && node is not null;)
            {
                var previous = node.Previous;
                if (!_pinned.Contains(node.Value.Response.Id)) Remove(node.Value.Response.Id);
                node = previous;
            }
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
        _pinned.Remove(id);
        if (!_byId.Remove(id, out var node)) return false;
        _recent.Remove(node);
        _bytes -= node.Value.Bytes;
        return true;
    }
}
