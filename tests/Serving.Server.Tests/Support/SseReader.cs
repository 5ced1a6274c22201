using System.Text.Json.Nodes;

namespace Serving.Server.Tests.Support;

/// Reads an SSE body the way OpenAI clients do: "data: ..." lines separated by blank lines, ending at
/// "data: [DONE]" (the Responses API's events are named: "event: <type>" before data whose "type" is that name, and
/// the stream just ends). Anything else on the wire fails the test.
public sealed class SseReader(Stream body) : IDisposable
{
    readonly StreamReader _reader = new(body);

    public bool SawDone { get; private set; }

    /// The next event's JSON, or null after [DONE] or at the end of the stream.
    public async Task<JsonNode?> NextAsync(CancellationToken cancellationToken = default)
    {
        string? name = null;
        while (await _reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0) continue;
            if (name is null && line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
                continue;
            }
            Assert.StartsWith("data: ", line);
            var data = line["data: ".Length..];
            if (data == "[DONE]")
            {
                SawDone = true;
                return null;
            }
            var payload = JsonNode.Parse(data);
            if (name is not null) Assert.Equal(name, payload!["type"]!.GetValue<string>());
            return payload;
        }
        return null;
    }

    public async Task<List<JsonNode>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var events = new List<JsonNode>();
        while (await NextAsync(cancellationToken) is { } e) events.Add(e);
        return events;
    }

    public void Dispose() => _reader.Dispose();
}
