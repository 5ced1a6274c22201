using Serving.Server.OpenAI;
using Serving.Server.OpenAI.Responses;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.Tests.OpenAI.Responses;

/// The events of a streamed response follow its items: white space before calls (a reasoning model's "\n\n" after
/// </think>) opens no message, and every item is added and done at the index the finished response lists it at.
public sealed class ResponseStreamTests
{
    static ChatChunkChoice Content(string text) => new(0, new ChatDelta(null, text), null, null, null);

    static ChatChunkChoice Call(int index, string? id, string? name, string arguments) =>
        new(0, new ChatDelta(null, null) { ToolCalls = [new ToolCallDelta(index, id, id is null ? null : "function", new FunctionCallDelta(name, arguments))] },
            null, null, null);

    [Fact]
    public void WhiteSpaceBeforeCallsOpensNoMessage()
    {
        var ids = new OutputIds();
        var stream = new ResponseStream(ids, logprobs: false);
        var events = new[] { Content("\n"), Content("\n"), Call(0, "call_1", "f", "{\"a\""), Call(0, null, null, ": 1}") }
            .SelectMany(stream.For).ToList();
        var output = new ResponseItem[] { new FunctionCallItem(ids.Call(0), "call_1", "f", "{\"a\": 1}", "completed") };
        events.AddRange(stream.Finish(new ResponseObject("resp_1", 0, "completed", "m", output, null)));

        Assert.DoesNotContain(events, e => e.Item is MessageItem);
        Assert.Equal([0, 0], events.Where(e => e.Type is "response.output_item.added" or "response.output_item.done").Select(e => e.OutputIndex!.Value));
        Assert.Equal("{\"a\": 1}", string.Concat(events.Where(e => e.Type == "response.function_call_arguments.delta").Select(e => e.Delta)));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.SequenceNumber));
        Assert.Equal("response.completed", events[^1].Type);
    }

    [Fact]
    public void WhiteSpaceBeforeTextJoinsTheText()
    {
        var ids = new OutputIds();
        var stream = new ResponseStream(ids, logprobs: false);
        var events = new[] { Content("\n"), Content(" Hi"), Content("!") }.SelectMany(stream.For).ToList();
        Assert.Equal("\n Hi!", string.Concat(events.Where(e => e.Type == "response.output_text.delta").Select(e => e.Delta)));
        var incomplete = new ResponseObject("resp_1", 0, "incomplete", "m",
            [new MessageItem(ids.Message, "assistant", [ContentPart.Output("\n Hi!")], "incomplete")], null);
        Assert.Equal("response.incomplete", stream.Finish(incomplete).Last().Type);
    }
}
