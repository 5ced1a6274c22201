using Serving.Engine.Tokenization;
using Serving.Training.Tokenizer;

namespace Serving.Training.Checkpoints;

/// A byte-level BPE tokenizer.json of any vocabulary size, made deterministically without a corpus: the 256
/// byte symbols (GPT-2's byte-to-character map), then merges that grow common characters into longer strings
/// level by level (every pair of the seed characters, then every pair token plus a seed character, ...), then
/// the special tokens at the top ids. Real files in the Hugging Face format, so the engine's tokenizer reads
/// them as it reads any checkpoint's; the tokens are not learned from text, which random weights do not need
/// (BpeTrainer learns them from a corpus).
internal static class ByteLevelBpeTokenizer
{
    /// Seed characters of the merges, most frequent English characters first; 'Ġ' is the space byte.
    const string SeedCharacters = "Ġetaoinshrdlcumwfgypbvkjxqz" + "ETAOINSHRDLCUMWFGYPBVKJXQZ" + "0123456789" + ".,'-";

    /// Writes tokenizer.json and tokenizer_config.json for a vocabulary whose top numSpecial ids are special tokens.
    public static void Write(string directory, int vocabSize, int numSpecial, int maxLength)
    {
        var numRegular = vocabSize - numSpecial;
        if (numRegular < 256) throw new ArgumentException($"vocabulary {vocabSize} leaves fewer than 256 byte tokens after {numSpecial} special tokens");
        var (tokens, merges) = RegularTokens(numRegular);
        TokenizerFiles.Write(directory, tokens, merges, numSpecial, maxLength);
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
}
