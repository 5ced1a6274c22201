using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Training.Tokenizer;

/// A byte-level BPE tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json) that the engine's
/// tokenizer reads as it reads any checkpoint's: GPT-2's byte alphabet and word pattern (the ByteLevel
/// pre-tokenizer), the merges in rank order, and special tokens at the top ids with a ChatML chat template.
internal static class TokenizerFiles
{
    public const string BeginOfText = "<|begin_of_text|>";
    public const string EndOfText = "<|end_of_text|>";

    public const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// The pre-tokenizer of every file written here; the BPE trainer splits its corpus with the engine's reading
    /// of this same object, so training words are the words encoding sees.
    public static JsonObject PreTokenizer() =>
        new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };

    /// Special tokens in id order from the first special id: BOS, EOS, the ChatML pair, then reserved ones.
    public static string[] SpecialTokens(int count)
    {
        string[] named = [BeginOfText, EndOfText, "<|im_start|>", "<|im_end|>"];
        if (count < named.Length) throw new ArgumentException($"at least {named.Length} special tokens are needed");
        return [.. named, .. Enumerable.Range(0, count - named.Length).Select(i => $"<|reserved_special_token_{i}|>")];
    }

    /// Writes tokenizer.json and tokenizer_config.json: tokens (byte-level strings, in id order) and the merges
    /// that make them, then numSpecial special tokens. BOS is the first special token, EOS the second; the
    /// tokenizer adds no BOS to a text (add_bos_token false), as documents in training were not given one.
    public static void Write(string directory, IReadOnlyList<string> tokens, IReadOnlyList<(string Left, string Right)> merges, int numSpecial, int maxLength)
    {
        Directory.CreateDirectory(directory);
        var specials = SpecialTokens(numSpecial);
        var vocab = new JsonObject();
        for (var id = 0; id < tokens.Count; id++) vocab[tokens[id]] = id;
        for (var i = 0; i < specials.Length; i++) vocab[specials[i]] = tokens.Count + i;
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), TokenizerJson(vocab, merges, specials, tokens.Count).ToJsonString());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
        {
            ["bos_token"] = specials[0],
            ["eos_token"] = specials[1],
            ["add_bos_token"] = false,
            ["chat_template"] = ChatMlTemplate,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["model_max_length"] = maxLength,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static JsonObject TokenizerJson(JsonObject vocab, IReadOnlyList<(string Left, string Right)> merges, string[] specials, int firstSpecialId) => new()
    {
        ["version"] = "1.0",
        ["truncation"] = null,
        ["padding"] = null,
        ["added_tokens"] = new JsonArray(specials.Select((content, i) => (JsonNode)new JsonObject
        {
            ["id"] = firstSpecialId + i, ["content"] = content, ["single_word"] = false, ["lstrip"] = false,
            ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        }).ToArray()),
        ["normalizer"] = null,
        ["pre_tokenizer"] = PreTokenizer(),
        ["post_processor"] = null,
        ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
        ["model"] = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
            ["vocab"] = vocab,
            ["merges"] = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray()),
        },
    };
}
