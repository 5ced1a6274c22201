using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Tokenization;

namespace Serving.LoadGen.Checkpoints;

/// A byte-level BPE tokenizer.json of any vocabulary size, made deterministically without a corpus: the 256
/// byte symbols (GPT-2's byte-to-character map), then merges that grow common characters into longer strings
/// level by level (every pair of the seed characters, then every pair token plus a seed character, ...), then
/// the special tokens at the top ids. Real files in the Hugging Face format, so the engine's tokenizer reads
/// them as it reads any checkpoint's; the tokens are not learned from text, which random weights do not need.
internal static class ByteLevelBpeTokenizer
{
    /// Seed characters of the merges, most frequent English characters first; 'Ġ' is the space byte.
    const string SeedCharacters = "Ġetaoinshrdlcumwfgypbvkjxqz" + "ETAOINSHRDLCUMWFGYPBVKJXQZ" + "0123456789" + ".,'-";

    public const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// Special tokens in id order from the first special id: BOS, EOS, the ChatML pair, then reserved ones.
    public static string[] SpecialTokens(int count)
    {
        string[] named = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"];
        if (count < named.Length) throw new ArgumentException($"at least {named.Length} special tokens are needed");
        return [.. named, .. Enumerable.Range(0, count - named.Length).Select(i => $"<|reserved_special_token_{i}|>")];
    }

    /// Writes tokenizer.json and tokenizer_config.json for a vocabulary whose top numSpecial ids are special tokens.
    public static void Write(string directory, int vocabSize, int numSpecial, int maxLength)
    {
        var numRegular = vocabSize - numSpecial;
        if (numRegular < 256) throw new ArgumentException($"vocabulary {vocabSize} leaves fewer than 256 byte tokens after {numSpecial} special tokens");
        var (tokens, merges) = RegularTokens(numRegular);
        var specials = SpecialTokens(numSpecial);
        var vocab = new JsonObject();
        for (var id = 0; id < tokens.Count; id++) vocab[tokens[id]] = id;
        for (var i = 0; i < specials.Length; i++) vocab[specials[i]] = numRegular + i;
        var options = new JsonSerializerOptions { WriteIndented = false };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), TokenizerJson(vocab, merges, specials, numRegular).ToJsonString(options));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
        {
            ["bos_token"] = specials[0],
            ["eos_token"] = specials[1],
            ["chat_template"] = ChatMlTemplate,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["model_max_length"] = maxLength,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// The byte symbols followed by merged tokens, numRegular in all, and the merges that make them (in rank order).
    internal static (List<string> Tokens, List<(string Left, string Right)> Merges) RegularTokens(int numRegular)
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.Of((byte)b).ToString()).ToList();
        var merges = new List<(string, string)>();
        var seeds = SeedCharacters.Select(c => c.ToString()).ToArray();
        var level = seeds;
        while (tokens.Count < numRegular)
        {
            var next = new List<string>();
            // each string of the next level is (a token of this level) + (one seed): made exactly once
            foreach (var left in level)
                foreach (var right in seeds)
                {
                    if (tokens.Count == numRegular) return (tokens, merges);
                    merges.Add((left, right));
                    tokens.Add(left + right);
                    next.Add(left + right);
                }
            level = [.. next];
        }
        return (tokens, merges);
    }

    static JsonObject TokenizerJson(JsonObject vocab, List<(string Left, string Right)> merges, string[] specials, int firstSpecialId) => new()
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
        ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
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
