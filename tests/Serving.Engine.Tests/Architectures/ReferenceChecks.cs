using Serving.Engine.Config;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Architectures;

/// What the tests of the families checked against a float64 forward share: a random checkpoint's folder gets the
/// llama-gqa fixture's tokenizer; the decoder's logits of every position, over the paged pool in chunks, against the
/// reference's; the reference's greedy tokens against the engine's (on the CPU or CUDA); the config writer's round
/// trip; and the pieces of transformers' forward every family has (rotate_half rotary embedding, causal attention over
/// grouped heads).
internal static class ReferenceChecks
{
    /// The llama-gqa fixture's tokenizer (512 tokens) beside a random checkpoint.
    public static void CopyTokenizer(string folder)
    {
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(Fixtures.Dir("llama-gqa"), file), Path.Combine(folder, file));
    }

    /// The checkpoint's logits of every position of prompt, computed in the given chunks over the paged pool (blocks of
    /// 4), are the reference's to 2e-4 (on the CPU: the plain backend).
    public static void AssertEveryPositionMatches(string folder, int[] prompt, int[] chunks, double[][] expected, string what,
        int tensorParallelSize = 1)
    {
        using var model = ModelLoader.Load(folder, "float32", tensorParallelSize: tensorParallelSize);
        using var cache = model.CreateKVCache(numBlocks: 16, blockSize: 4);
        var runner = new PagedRunner(model, cache);
        var sequence = runner.Add(prompt);
        var rows = new List<float[]>();
        foreach (var chunk in chunks) rows.AddRange(runner.Step([(sequence, chunk)], allLogits: true));
        Assert.Equal(prompt.Length, rows.Count);
        for (var position = 0; position < prompt.Length; position++)
            for (var token = 0; token < expected[position].Length; token++)
                Assert.True(Math.Abs(expected[position][token] - rows[position][token]) < 2e-4,
                    $"{what}: position {position}, token {token}: {rows[position][token]} against {expected[position][token]}");
    }

    /// The reference's greedy continuation of prompt: its argmax token, count times.
    public static List<int> Greedy(Func<int[], double[][]> reference, int[] prompt, int count)
    {
        var tokens = new List<int>();
        for (var i = 0; i < count; i++)
        {
            var logits = reference([.. prompt, .. tokens])[^1];
            tokens.Add(Array.IndexOf(logits, logits.Max()));
        }
        return tokens;
    }

    /// On CUDA in bfloat16, where the fused backend runs the checkpoint (ModelConfig.FusedKernelsCompute): its logits of
    /// every prompt position (prefilled in two chunks, the second attending over the first's pool) and of decode steps
    /// after it (teacher-forced on the same tokens) are the plain backend's within bfloat16 rounding (the two sum in
    /// other orders, and a mixture's routing may part at a near-tie), with the same argmax wherever the plain logits' top
    /// two are not a near-tie; prefill and decode run the tensor-core kernels (head dim 16) at the model's attention scale.
    /// With the float64 reference (reference), the two may part further, as long as the fused logits stay as close to
    /// it as the plain ones (within half again their distance): gpt-oss's plain attention rounds its scores and
    /// probabilities to bfloat16 where the kernels keep float32, and its experts' routing parts at near-ties.
    /// write: fills a checkpoint folder and returns the tensors it wrote, which reference reads.
    public static void AssertFusedAgreesWithPlain(Func<string, Dictionary<string, Tensor>> write, Action<string> log,
        Func<Dictionary<string, Tensor>, int[], double[][]>? reference = null)
    {
        int[] prompt = [1, 17, 305, 42, 9, 77, 480, 3, 250, 11], forced = [64, 5, 300, 12];
        using var folder = new TempDirectory();
        var weights = write(folder.Path);
        using var model = ModelLoader.Load(folder.Path, "bfloat16", CUDA);
        Assert.True(model.FusedKernelsActive());
        using var cache = model.CreateKVCache(numBlocks: 32, blockSize: 4);
        List<float[]> Run(bool fused)
        {
            model.UseFusedKernels = fused;
            var runner = new PagedRunner(model, cache);
            var sequence = runner.Add(prompt);
            var rows = new List<float[]>(runner.Step([(sequence, prompt.Length / 2)], allLogits: true));
            rows.AddRange(runner.Step([(sequence, prompt.Length - prompt.Length / 2)], allLogits: true));
            foreach (var token in forced)
            {
                runner.Append(sequence, token);
                rows.Add(runner.Step([(sequence, 1)])[0]);
            }
            return rows;
        }
        const double nearTie = 0.25;
        var (plain, fusedRows) = (Run(fused: false), Run(fused: true));
        var differences = plain.Zip(fusedRows, (p, f) => p.Zip(f, (a, b) => Math.Abs((double)a - b)).ToArray()).ToArray();
        var (max, mean) = (differences.Max(d => d.Max()), differences.Average(d => d.Average()));
        var parted = new List<string>();
        for (var row = 0; row < plain.Count; row++)
        {
            var (p, f) = (PagedRunner.ArgMax(plain[row]), PagedRunner.ArgMax(fusedRows[row]));
            var top2 = plain[row].OrderDescending().Take(2).ToArray();
            if (p != f) parted.Add($"position {row}: {p} against {f}, plain top-2 gap {top2[0] - top2[1]:F3}");
            Assert.True(p == f || top2[0] - top2[1] < nearTie, $"argmax parts at position {row} ({p} against {f}) where the plain gap is {top2[0] - top2[1]}");
        }
        log($"|fused - plain| bf16 logits over {plain.Count} positions: max {max:E2}, mean {mean:E2}; argmax parted at {parted.Count}: {string.Join("; ", parted)}");
        if (reference is null)
        {
            Assert.True(max <= nearTie && mean <= 0.03, $"max difference {max}, mean {mean}");
            return;
        }
        var expected = reference(weights, [.. prompt, .. forced]);
        (double Max, double Mean) FromReference(List<float[]> rows)
        {
            var errors = rows.Select((row, i) => row.Select((v, j) => Math.Abs(v - expected[i][j])).ToArray()).ToArray();
            return (errors.Max(e => e.Max()), errors.Average(e => e.Average()));
        }
        var (fusedError, plainError) = (FromReference(fusedRows), FromReference(plain));
        log($"|fused - float64| max {fusedError.Max:E2}, mean {fusedError.Mean:E2}; |plain - float64| max {plainError.Max:E2}, mean {plainError.Mean:E2}");
        Assert.True(fusedError.Max <= Math.Max(nearTie, 1.5 * plainError.Max) && fusedError.Mean <= Math.Max(0.03, 1.5 * plainError.Mean),
            $"fused from the reference: max {fusedError.Max}, mean {fusedError.Mean}; plain: max {plainError.Max}, mean {plainError.Mean}");
    }

    /// The config the reader reads from the checkpoint write makes.
    public static ModelConfig ConfigOf(Func<string, Dictionary<string, Tensor>> write)
    {
        using var folder = new TempDirectory();
        write(folder.Path);
        return ModelConfig.Load(folder.Path);
    }

    /// The engine's greedy tokens for prompt from the checkpoint write makes (on the CPU or on CUDA) are the reference's
    /// over the tensors it wrote.
    public static async Task AssertEngineGreedyIsTheReferencesAsync(Func<string, Dictionary<string, Tensor>> write,
        Func<Dictionary<string, Tensor>, int[], double[][]> reference, int[] prompt, int count, string device = "cpu")
    {
        using var folder = new TempDirectory();
        var weights = write(folder.Path);
        Assert.Equal(Greedy(tokens => reference(weights, tokens), prompt, count), await EngineGreedyAsync(folder.Path, prompt, count, device));
    }

    /// The engine's greedy tokens for prompt from the checkpoint folder, on the CPU or on CUDA.
    public static async Task<int[]> EngineGreedyAsync(string folder, int[] prompt, int count, string device = "cpu")
    {
        await using var engine = await Execution.EngineTestHelpers.StartAsync("llama-gqa", o => device == "cpu"
            ? o with { Model = folder, BlockSize = 4 }
            : o with { Model = folder, BlockSize = 4, Device = device, NumGpuBlocksOverride = 64 });
        return (await Execution.EngineTestHelpers.CollectAsync(engine, Execution.EngineTestHelpers.Greedy(prompt, count))).Tokens();
    }

    /// ModelConfigWriter writes the folder's config so that the reader reads back the same config (lists compared by
    /// their items: a record compares them by reference).
    public static void AssertConfigRoundTrips(string folder)
    {
        var config = ModelConfig.Load(folder);
        using var written = new TempDirectory();
        File.WriteAllText(Path.Combine(written.Path, "config.json"), ModelConfigWriter.ToJson(config).ToJsonString());
        var back = ModelConfig.Load(written.Path);
        static ModelConfig WithoutLists(ModelConfig c) =>
            c with { Architectures = [], EosTokenIds = [], LayerWindows = [], NoRopeLayers = [], DenseLayers = [] };
        Assert.Equal(WithoutLists(config), WithoutLists(back));
        Assert.Equal(config.Architectures, back.Architectures);
        Assert.Equal(config.LayerWindows, back.LayerWindows);
        Assert.Equal(config.NoRopeLayers, back.NoRopeLayers);
        Assert.Equal(config.DenseLayers, back.DenseLayers);
    }

    /// cos and sin of positions 0 .. count - 1 for rotate_half over headDim dimensions: (count, 1, headDim) float64, the
    /// frequencies divided by a linear rope's factor.
    public static (Tensor Cos, Tensor Sin) HalfRope(int count, int headDim, double theta, double factor = 1)
    {
        var inverse = 1.0 / pow(theta, Serving.Engine.HeldScalars.Range(0, headDim, 2, ScalarType.Float64) / headDim) / factor;
        var angles = outer(Serving.Engine.HeldScalars.Range(0, count, dtype: ScalarType.Float64), inverse);                           // (count, headDim / 2)
        return (cat([angles.cos(), angles.cos()], -1).unsqueeze(1), cat([angles.sin(), angles.sin()], -1).unsqueeze(1));
    }

    /// y * cos + rotate_half(y) * sin, rotate_half(y) = cat(-y2, y1): y (t, heads, D).
    public static Tensor RotateHalf(Tensor y, (Tensor Cos, Tensor Sin) rope)
    {
        var half = y.shape[^1] / 2;
        return y * rope.Cos + cat([-y.narrow(-1, half, half), y.narrow(-1, 0, half)], -1) * rope.Sin;
    }

    /// Each query position sees itself and the positions before it, and with a window only the window's last ones:
    /// (t, t) true where a key is hidden.
    public static Tensor CausalMask(int count, int? window = null)
    {
        var (query, key) = (Serving.Engine.HeldScalars.Range(0, count).unsqueeze(1), Serving.Engine.HeldScalars.Range(0, count).unsqueeze(0));
        var hidden = key > query;
        return window is { } w ? hidden.logical_or(key <= query - w) : hidden;
    }

    /// softmax(q k^T x scale, soft-capped when asked, masked) v with each KV head repeated over its group of query heads,
    /// as transformers' eager attention computes it: q (t, H, D), k and v (t, G, D) -> (t, H x D).
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, double scale, Tensor hidden, double? softcap = null)
    {
        var (t, heads, dim) = (q.shape[0], q.shape[1], q.shape[2]);
        var repeat = heads / k.shape[1];
        var keys = k.repeat_interleave(repeat, 1).permute(1, 2, 0);                                // (H, D, t)
        var values = v.repeat_interleave(repeat, 1).permute(1, 0, 2);                              // (H, t, D)
        var scores = q.permute(1, 0, 2).matmul(keys) * scale;                                      // (H, t, t)
        if (softcap is { } cap) scores = (scores / cap).tanh() * cap;
        var attended = scores.masked_fill(hidden, Serving.Engine.HeldScalars.MinusInfinity).softmax(-1).matmul(values);   // (H, t, D)
        return attended.permute(1, 0, 2).reshape(t, heads * dim);
    }

    /// A (t, vocab) float64 tensor as rows.
    public static double[][] Rows(Tensor logits)
    {
        var (t, vocab) = ((int)logits.shape[0], (int)logits.shape[1]);
        var data = logits.data<double>().ToArray();
        return [.. Enumerable.Range(0, t).Select(row => data.AsSpan(row * vocab, vocab).ToArray())];
    }
}
