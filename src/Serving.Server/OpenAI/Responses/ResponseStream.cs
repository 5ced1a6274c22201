using Serving.Server.OpenAI.Tools;

namespace Serving.Server.OpenAI.Responses;

/// A streamed response's events, numbered in order, made from the chat choice's stream deltas: an item is added
/// when the answer starts writing it (its thinking, its text, each function call), its deltas follow, and it is done
/// when the answer moves past it. Finish closes what is open and announces any item the deltas never showed (an
/// empty answer's message) with the finished answer's own items, so the last event's response is the whole answer.
internal sealed class ResponseStream(OutputIds ids, bool logprobs)
{
    sealed record OpenItem(string Id, int OutputIndex);

    readonly List<OpenItem> _opened = [];
    readonly Dictionary<int, OpenItem> _calls = [];
    readonly List<ChatTokenLogprob> _heldLogprobs = [];   // of tokens that wrote no text yet (held back, or thinking)
    string _heldSpace = "";   // white space before the message's first text: the answer may be calls, with no message
    int _sequence;

    public ResponseEvent Lifecycle(string type, ResponseObject response) => Next(type) with { Response = response };

    /// The events one chunk of the chat choice's stream makes (none for a chunk that only carries the finish).
    public IEnumerable<ResponseEvent> For(ChatChunkChoice chunk)
    {
        if (logprobs) _heldLogprobs.AddRange(chunk.Logprobs?.Content ?? []);
        if (chunk.Delta.Reasoning is { Length: > 0 } thinking)
        {
            var (item, added) = Open(ids.Reasoning);
            if (added) yield return ItemAdded(item, new ReasoningItem(item.Id, [], [], "in_progress"));
            yield return Next("response.reasoning_text.delta") with
            {
                ItemId = item.Id,
                OutputIndex = item.OutputIndex,
                ContentIndex = 0,
                Delta = thinking,
            };
        }
        var text = chunk.Delta.Content ?? "";
        if (!_opened.Any(o => o.Id == ids.Message) && string.IsNullOrWhiteSpace(text))
        {
            _heldSpace += text;
            text = "";
        }
        else if (text.Length > 0)
        {
            (text, _heldSpace) = (_heldSpace + text, "");
        }
        if (text.Length > 0)
        {
            var (item, added) = Open(ids.Message);
            if (added)
            {
                yield return ItemAdded(item, new MessageItem(item.Id, "assistant", [], "in_progress"));
                yield return Next("response.content_part.added") with
                {
                    ItemId = item.Id,
                    OutputIndex = item.OutputIndex,
                    ContentIndex = 0,
                    Part = ContentPart.Output("", logprobs ? [] : null),
                };
            }
            yield return Next("response.output_text.delta") with
            {
                ItemId = item.Id,
                OutputIndex = item.OutputIndex,
                ContentIndex = 0,
                Delta = text,
                Logprobs = [.. _heldLogprobs],
            };
            _heldLogprobs.Clear();
        }
        foreach (var call in chunk.Delta.ToolCalls ?? [])
            foreach (var e in CallDelta(call)) yield return e;
    }

    IEnumerable<ResponseEvent> CallDelta(ToolCallDelta call)
    {
        if (!_calls.TryGetValue(call.Index, out var item))
        {
            (item, _) = Open(ids.Call(call.Index));
            _calls[call.Index] = item;
            yield return ItemAdded(item, new FunctionCallItem(item.Id, call.Id ?? "", call.Function.Name ?? "", "", "in_progress"));
        }
        if (call.Function.Arguments is { Length: > 0 } arguments)
            yield return Next("response.function_call_arguments.delta") with { ItemId = item.Id, OutputIndex = item.OutputIndex, Delta = arguments };
    }

    /// The closing events of every output item (added first where the deltas never showed it), then the terminal
    /// event named after the response's status.
    public IEnumerable<ResponseEvent> Finish(ResponseObject response)
    {
        for (var index = 0; index < response.Output.Count; index++)
        {
            var item = response.Output[index];
            var open = _opened.FirstOrDefault(o => o.Id == item.Id);
            if (open is null)
            {
                open = new OpenItem(item.Id, index);
                yield return ItemAdded(open, Empty(item));
                if (item is MessageItem)
                    yield return Next("response.content_part.added") with
                    {
                        ItemId = item.Id,
                        OutputIndex = index,
                        ContentIndex = 0,
                        Part = ContentPart.Output("", logprobs ? [] : null),
                    };
            }
            foreach (var e in Done(item, open.OutputIndex)) yield return e;
        }
        var terminal = response.Status == "incomplete" ? "response.incomplete" : "response.completed";
        yield return Lifecycle(terminal, response);
    }

    /// A failure after the stream began: an error event, then response.failed.
    public IEnumerable<ResponseEvent> Failure(Errors.ApiException error, ResponseObject failed)
    {
        yield return Next("error") with { Code = error.Code ?? error.Type, Message = error.Message, Param = error.Param };
        yield return Lifecycle("response.failed", failed with { Error = new ResponseError(error.Code ?? error.Type, error.Message) });
    }

    IEnumerable<ResponseEvent> Done(ResponseItem item, int outputIndex)
    {
        switch (item)
        {
            case ReasoningItem reasoning:
                yield return Next("response.reasoning_text.done") with
                {
                    ItemId = item.Id,
                    OutputIndex = outputIndex,
                    ContentIndex = 0,
                    Text = reasoning.Text,
                };
                break;
            case MessageItem message:
                var part = message.Content[0];
                yield return Next("response.output_text.done") with
                {
                    ItemId = item.Id,
                    OutputIndex = outputIndex,
                    ContentIndex = 0,
                    Text = part.Text,
                    Logprobs = part.Logprobs ?? [],
                };
                yield return Next("response.content_part.done") with { ItemId = item.Id, OutputIndex = outputIndex, ContentIndex = 0, Part = part };
                break;
            case FunctionCallItem call:
                yield return Next("response.function_call_arguments.done") with
                {
                    ItemId = item.Id,
                    OutputIndex = outputIndex,
                    Name = call.Name,
                    Arguments = call.Arguments,
                };
                break;
        }
        yield return Next("response.output_item.done") with { OutputIndex = outputIndex, Item = item };
    }

    (OpenItem Item, bool Added) Open(string id)
    {
        if (_opened.FirstOrDefault(o => o.Id == id) is { } open) return (open, false);
        var item = new OpenItem(id, _opened.Count);
        _opened.Add(item);
        return (item, true);
    }

    ResponseEvent ItemAdded(OpenItem item, ResponseItem empty) =>
        Next("response.output_item.added") with { OutputIndex = item.OutputIndex, Item = empty };

    static ResponseItem Empty(ResponseItem item) => item switch
    {
        ReasoningItem reasoning => reasoning with { Content = [], Status = "in_progress" },
        MessageItem message => message with { Content = [], Status = "in_progress" },
        FunctionCallItem call => call with { Arguments = "", Status = "in_progress" },
        _ => item,
    };

    ResponseEvent Next(string type) => new(type, _sequence++);
}
