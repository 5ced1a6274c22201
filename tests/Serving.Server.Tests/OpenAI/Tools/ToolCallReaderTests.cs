using System.Text;
using System.Text.Json.Nodes;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.Tests.OpenAI.Tools;

/// The --tool-call-parser formats (llama3_json, hermes, mistral, pythonic, granite, phi4_mini_json, qwen3_coder, seed_oss, openai) and the required-call scanner, read whole and
/// streamed in every split: the streamed content and calls always add up to the whole answer.
public sealed class ToolCallReaderTests
{
    public static TheoryData<string, string, string?, string[]> AutoCases() => new()
    {
        { "hermes", "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
            "Let me check.\n", ["get_weather {\"city\":\"Paris\"}", "get_time {}"] },
        { "hermes", "No tools needed: 2 < 3.", "No tools needed: 2 < 3.", [] },
        { "hermes", "<tool_call>\n{\"name\": broken}\n</tool_call>", "<tool_call>\n{\"name\": broken}\n</tool_call>", [] },
        { "llama3_json", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 2}}",
            null, ["get_weather {\"city\":\"Paris\",\"days\":2}"] },
        { "llama3_json", "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": [1]}}",
            null, ["a {}", "b {\"x\":[1]}"] },
        { "llama3_json", "  The capital is Paris.", "  The capital is Paris.", [] },
        { "llama3_json", " \n{\"name\": \"a\", \"parameters\": {}}", null, ["a {}"] },
        { "llama3_json", "{\"not\": \"a call\"}", "{\"not\": \"a call\"}", [] },
        { "mistral", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", null, ["get_weather {\"city\":\"Paris\"}"] },
        { "mistral", "[{\"name\": \"a\", \"arguments\": {\"k\": true}}, {\"name\": \"b\", \"arguments\": {}}]", null, ["a {\"k\":true}", "b {}"] },
        { "mistral", "Sure [1] is fine", "Sure [1] is fine", [] },
        { "pythonic", "[get_weather(city='San Francisco', metric=\"celsius\"), get_time()]", null,
            ["get_weather {\"city\":\"San Francisco\",\"metric\":\"celsius\"}", "get_time {}"] },
        { "pythonic", "<|python_start|>[book(seats=2, window=True, meal=None, legs=[{'from': 'CDG', 'to': \"SFO\"}], price=-1.5e2, tags=('a', 'b'),)]<|python_end|>", null,
            ["book {\"seats\":2,\"window\":true,\"meal\":null,\"legs\":[{\"from\":\"CDG\",\"to\":\"SFO\"}],\"price\":-150,\"tags\":[\"a\",\"b\"]}"] },
        { "pythonic", " [say(text='it\\'s \\u00e9t\\u00e9\\n')]", null, ["say {\"text\":\"it\\u0027s \\u00E9t\\u00E9\\n\"}"] },
        { "pythonic", "[1, 2] are the answers", "[1, 2] are the answers", [] },
        { "pythonic", "[search(pattern='\\d+\\.txt', drive='C:\\Temp', byte='\\x41\\101')]", null,
            ["search {\"pattern\":\"\\\\d\\u002B\\\\.txt\",\"drive\":\"C:\\\\Temp\",\"byte\":\"AA\"}"] },
        { "pythonic", "[f(1)]", "[f(1)]", [] },
        { "pythonic", "[f(a=1, a=2)]", "[f(a=1, a=2)]", [] },
        { "pythonic", "The answer is 4.", "The answer is 4.", [] },
        // gpt-oss: the harmony messages addressed to functions, as the reasoning parser leaves them in the content
        { "openai", "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>", null,
            ["get_weather {\"city\":\"Paris\"}"] },
        { "openai", "Let me check.<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{}<|call|>", "Let me check.", ["get_time {}"] },
        { "openai", "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>not json<|call|>", null, ["f not json"] },
        { "openai", "2 <| 3 is false", "2 <| 3 is false", [] },
        { "openai", "The answer is 4.", "The answer is 4.", [] },
        { "granite", "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", null, ["get_weather {\"city\":\"Paris\"}"] },
        { "granite", " <tool_call>[{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {\"k\": 1}}]", null, ["a {}", "b {\"k\":1}"] },
        { "granite", "The answer [1] is here.", "The answer [1] is here.", [] },
        { "granite", "[1, 2]", "[1, 2]", [] },
        { "phi4_mini_json", "functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", null, ["get_weather {\"city\":\"Paris\"}"] },
        { "phi4_mini_json", "I will look. functools[{\"name\": \"a\", \"arguments\": {}}]", "I will look. ", ["a {}"] },
        { "phi4_mini_json", "No tools needed.", "No tools needed.", [] },
        // qwen3_coder: values typed by the tools' schemas below (city and zip strings, days integer, options object)
        { "qwen3_coder", "Let me check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>",
            "Let me check.\n", ["get_weather {\"city\":\"Paris\",\"days\":2}"] },
        { "qwen3_coder", "<tool_call>\n<function=get_weather>\n<parameter=zip>\n10001\n</parameter>\n<parameter=options>\n{\"unit\": \"C\", \"hourly\": [1, 2]}\n</parameter>\n<parameter=note>\n42\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n</function>\n</tool_call>",
            null, ["get_weather {\"zip\":\"10001\",\"options\":{\"unit\":\"C\",\"hourly\":[1,2]},\"note\":\"42\"}", "get_time {}"] },
        { "qwen3_coder", "<function=get_weather>\n<parameter=city>\nNew\nYork\n</parameter>\n<parameter=days>\nthree\n</parameter>\n</function>", null,
            ["get_weather {\"city\":\"New\\nYork\",\"days\":\"three\"}"] },
        // closing tags a stop cut off, null, a type alias (count: "int"); a call without a name stays content
        { "qwen3_coder", "<tool_call>\n<function=f>\n<parameter=x>\n1\n</function>\n</tool_call>", null, ["f {\"x\":\"1\"}"] },
        { "qwen3_coder", "<tool_call>\n<function=get_weather>\n<parameter=count>\n5\n</parameter>\n<parameter=city>\nnull\n", null,
            ["get_weather {\"count\":5,\"city\":null}"] },
        { "qwen3_coder", "<tool_call>\n<function=>\n</function>\n</tool_call>", "<tool_call>\n<function=>\n</function>\n</tool_call>", [] },
        { "qwen3_coder", "<tool_call>\n<function=f", "<tool_call>\n<function=f", [] },
        { "qwen3_coder", "2 < 3, and <b> is bold.", "2 < 3, and <b> is bold.", [] },
        { "qwen3_coder", "<function=get_weather>\n<parameter=any>\n7\n</parameter>\n</function>", null, ["get_weather {\"any\":\"7\"}"] },   // a schema of true: no type
        // seed_oss: Qwen3-Coder's calls in <seed:tool_call>, after the thinking a reasoning parser did not take
        { "seed_oss", "<seed:think>Weather.</seed:think>\n<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n<parameter=days>2</parameter>\n</function>\n</seed:tool_call>",
            "<seed:think>Weather.</seed:think>\n", ["get_weather {\"city\":\"Paris\",\"days\":2}"] },
        { "seed_oss", "<seed:tool_call>\n<function=get_time>\n</function>\n</seed:tool_call><seed:tool_call>\n<function=get_weather>\n<parameter=zip>75001</parameter>\n</function>\n</seed:tool_call>",
            null, ["get_time {}", "get_weather {\"zip\":\"75001\"}"] },
        { "seed_oss", "No tools needed: 2 < 3.", "No tools needed: 2 < 3.", [] },
    };

    /// The request's tools as the chat template receives them (qwen3_coder types its values by them).
    static readonly JsonArray Tools = JsonNode.Parse("""
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "zip": {"type": "string"}, "days": {"type": "integer"}, "options": {"type": "object"},
            "count": {"type": "int"}, "any": true}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
        """)!.AsArray();

    [Theory]
    [MemberData(nameof(AutoCases))]
    public void AutoCallsAreReadWholeAndInEveryStreamedSplit(string parser, string text, string? content, string[] calls)
    {
        var (wholeContent, wholeCalls) = ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Auto), ToolCallParsers.Create(parser, Tools)).Complete(text);
        Assert.Equal(content, wholeContent);
        Assert.Equal(calls, (wholeCalls ?? []).Select(c => $"{c.Function.Name} {c.Function.Arguments}"));
        for (var split = 0; split <= text.Length; split++)
        {
            var reader = ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Auto), ToolCallParsers.Create(parser, Tools));
            var (streamedContent, streamedCalls) = Stream(reader, [text[..split], text[split..]]);
            Assert.Equal(content ?? (calls.Length == 0 ? text : ""), streamedContent);
            Assert.Equal(calls, streamedCalls);
        }
        var byCharacter = Stream(ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Auto), ToolCallParsers.Create(parser, Tools)), text.Select(c => c.ToString()));
        Assert.Equal(calls, byCharacter.Calls);
    }

    [Fact]
    public void RequiredCallsStreamTheirArgumentsAsWritten()
    {
        const string text = "[{\"name\": \"f\", \"parameters\": {\"a\": [1, {\"b\": \"}]\\\"\"}]}},\n {\"name\":\"g\",\"parameters\":{}} ]";
        string[] expected = ["f {\"a\": [1, {\"b\": \"}]\\\"\"}]}", "g {}"];
        var (_, whole) = ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Required), null).Complete(text);
        Assert.Equal(expected, whole!.Select(c => $"{c.Function.Name} {c.Function.Arguments}"));
        var reader = ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Required), null);
        var deltas = text.Select(c => reader.Push(c.ToString(), final: false)).ToList();
        Assert.Equal(expected, Assemble(deltas.SelectMany(d => d.ToolCalls ?? [])));
        Assert.All(deltas, d => Assert.Null(d.Content));
        Assert.True(deltas.Count(d => d.ToolCalls is not null) > 10, "the arguments stream character by character");
    }

    [Fact]
    public void ANamedCallStreamsItsArgumentsUnderOneId()
    {
        var reader = ToolCallReader.For(ChatToolsFor(ToolChoiceMode.Named, "f"), null);
        var deltas = new[] { "{\"x\"", ": 1", "}" }.Select((d, i) => reader.Push(d, final: i == 2)).SelectMany(s => s.ToolCalls!).ToList();
        Assert.Equal("f", deltas[0].Function.Name);
        Assert.NotNull(deltas[0].Id);
        Assert.All(deltas.Skip(1), d => Assert.Null(d.Id));
        Assert.Equal(["f {\"x\": 1}"], Assemble(deltas));
        Assert.Equal("stop", reader.FinishReason("stop", calledTools: true));
    }

    static ChatTools ChatToolsFor(ToolChoiceMode mode, string? name = null) => new(null, mode, name, null);

    static (string Content, string[] Calls) Stream(ToolCallReader reader, IEnumerable<string> pieces)
    {
        var list = pieces.ToList();
        var content = new StringBuilder();
        var deltas = new List<ToolCallDelta>();
        for (var i = 0; i < list.Count; i++)
        {
            var step = reader.Push(list[i], final: i == list.Count - 1);
            content.Append(step.Content);
            deltas.AddRange(step.ToolCalls ?? []);
        }
        return (content.ToString(), Assemble(deltas));
    }

    /// What a client does with tool_call deltas: a name opens a call at its index, arguments append to it.
    static string[] Assemble(IEnumerable<ToolCallDelta> deltas)
    {
        var calls = new SortedDictionary<int, (string Name, StringBuilder Arguments)>();
        foreach (var delta in deltas)
        {
            if (delta.Function.Name is { } name) calls[delta.Index] = (name, new StringBuilder());
            calls[delta.Index].Arguments.Append(delta.Function.Arguments);
        }
        return calls.Values.Select(c => $"{c.Name} {c.Arguments}").ToArray();
    }
}
