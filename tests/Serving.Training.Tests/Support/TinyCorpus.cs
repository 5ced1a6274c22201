using Serving.Engine.Config;
using Serving.Training.Training;

namespace Serving.Training.Tests.Support;

/// A token stream a tiny model learns within a few steps: short "sentences" of a small vocabulary following a
/// fixed grammar (each token's successor mostly determined), and the tiny shape's config over it.
internal static class TinyCorpus
{
    public const int VocabSize = 64;

    public static int[] Tokens(int count, int seed)
    {
        var random = new Random(seed);
        var tokens = new int[count];
        for (var i = 0; i < count; i++)
            tokens[i] = i == 0 || random.Next(8) == 0 ? random.Next(VocabSize - 1) : (tokens[i - 1] * 7 + 3) % (VocabSize - 1);
        return tokens;
    }

    public static ModelConfig Config(int? numKVHeads = null, int maxLength = 32) =>
        TrainingShapes.Get("tiny", VocabSize, maxLength, numKVHeads, bosTokenId: null, eosTokenId: VocabSize - 1);

    public static TrainingOptions Options(int steps) => new()
    {
        Steps = steps, BatchSize = 8, SequenceLength = 32, LearningRate = 1e-2, WarmupSteps = 2, LogEvery = 1, EvalWindows = 8,
    };
}
