using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// tokenizers' post-processor for a single sequence: the special tokens wrapped around the encoded text when
/// special tokens are requested (Llama-3's TemplateProcessing puts <|begin_of_text|> in front).
internal interface IPostProcessor
{
    List<int> Apply(List<int> ids);
}

internal static class PostProcessors
{
    /// The "post_processor" object of tokenizer.json; null when the file has none.
    public static IPostProcessor? FromJson(JsonElement json) => json.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : Create(json);

    static IPostProcessor Create(JsonElement json)
    {
        var type = json.GetProperty("type").GetString();
        return type switch
        {
            "Sequence" => new SequencePostProcessor(json.GetProperty("processors").EnumerateArray().Select(Create).ToArray()),
            "TemplateProcessing" => TemplatePostProcessor.FromJson(json),
            // ByteLevel only trims offsets; ids are untouched.
            "ByteLevel" => new SequencePostProcessor([]),
            "RobertaProcessing" or "BertProcessing" => new TemplatePostProcessor(
                [json.GetProperty("cls")[1].GetInt32()], [json.GetProperty("sep")[1].GetInt32()]),
            _ => throw new NotSupportedException($"tokenizer.json: post_processor type '{type}' is not supported"),
        };
    }
}

internal sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> steps) : IPostProcessor
{
    public List<int> Apply(List<int> ids) => steps.Aggregate(ids, (current, step) => step.Apply(current));
}

/// Special tokens before and after the sequence $A (the "single" template; pairs are not encoded here).
internal sealed class TemplatePostProcessor(IReadOnlyList<int> before, IReadOnlyList<int> after) : IPostProcessor
{
    public static TemplatePostProcessor FromJson(JsonElement json)
    {
        var specialTokens = json.GetProperty("special_tokens");
        List<int> before = [], after = [];
        var seenSequence = false;
        foreach (var item in json.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _))
            {
                seenSequence = true;
                continue;
            }
            var name = item.GetProperty("SpecialToken").GetProperty("id").GetString()!;
            var ids = specialTokens.GetProperty(name).GetProperty("ids").EnumerateArray().Select(id => id.GetInt32());
            (seenSequence ? after : before).AddRange(ids);
        }
        return new TemplatePostProcessor(before, after);
    }

    public List<int> Apply(List<int> ids) => [.. before, .. ids, .. after];
}
