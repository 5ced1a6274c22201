using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Sampling;

/// Builders shared by the sampling tests.
internal static class SamplingTestData
{
    public const int EosId = 7;

    /// A sampler row whose generated tokens live in a list the test appends to (as the scheduler's sequence does).
    public static SamplingState State(SamplingParams parameters, int[]? prompt = null, int[]? output = null) =>
        new(parameters, prompt ?? [1, 2, 3], new List<int>(output ?? []), [EosId]);

    /// Records a generated token the way the engine does: in the sequence's output list.
    public static void Append(SamplingState state, int token) => ((List<int>)state.OutputTokenIds).Add(token);

    /// (rows.Length, vocab) float32 logits of fixed values.
    public static Tensor Logits(params float[][] rows) =>
        tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);

    /// (numRows, vocab) reproducible random logits with a wide spread (so distinct seeds pick distinct tokens).
    public static Tensor RandomLogits(int numRows, int vocab, ulong seed)
    {
        using var generator = new Generator(seed, CPU);
        return randn([numRows, vocab], generator: generator) * 3;
    }

    public static float[] Row(Tensor logits, int row) => logits[row].data<float>().ToArray();

    /// log(p) for each probability: logits whose softmax is exactly that distribution (up to rounding).
    public static float[] LogOf(params double[] probs) => probs.Select(p => (float)Math.Log(p)).ToArray();
}
