using Serving.Engine.Grammar;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Sampling;

/// The chosen token of each row of a step, and its log-probabilities for rows that asked (else null).
public sealed record SamplerOutput(int[] TokenIds, TokenLogprob?[] Logprobs)
{
    /// Rows whose every token was masked out, so their token means nothing: a structured output's next tokens all
    /// excluded by the row's allowed_token_ids or bad_words (only rows under a grammar are checked).
    public IReadOnlyList<int> RowsWithNoToken { get; init; } = [];
}

/// Chooses the next token of every sequence in a step with one set of batched tensor ops, whatever mix of
/// parameters the rows carry:
///   raw logits ─► logit_bias ─► min_tokens ─► penalties ─┬─► greedy rows: argmax
///                                                        └─► others: / temperature ─► min_p ─► top-k ─► top-p
///                                                              ─► softmax ─► argmax(probs / q), q ~ Exp(1)
/// argmax(probs / q) with q ~ Exponential(1) draws exactly from probs (the exponential race); drawing a seeded row's q
/// from a generator seeded by the request's seed, the sequence and the token's place (SamplingState.NextTokenGenerator)
/// makes that row reproducible regardless of what else is in the batch or how many tokens a step appends.
/// Log-probabilities follow vLLM V1's default ("raw"): log_softmax of the model's logits, before bias,
/// penalties, temperature and truncation. Rows without a seed draw from the device's default generator, which
/// the engine seeds once with torch.manual_seed(EngineOptions.Seed). Holds no state of its own.
public sealed class Sampler
{
    /// Parameters that filter nothing: temperature 1, no top-k, top-p or min-p.
    static readonly SamplingParams Unfiltered = new();

    /// Exponential draws are clamped to this (a normal float, so flush-to-zero cannot undo it): a draw of
    /// exactly 0 would make 0 / 0 = NaN for a masked token, and argmax picks NaN.
    static readonly Scalar MinNoise = 1e-20f.ToScalar();   // held for the process (HeldScalars says why)

    /// logits: (numSeqs, vocab), any float dtype, any device; row i belongs to rows[i]. The logits are not
    /// modified. A seeded row draws its vocab exponentials from its token's own generator.
    /// allowed: the structured-output masks of the step (null when no row has a grammar); a disallowed token
    /// gets -inf before anything else, so penalties, filters and log-probabilities all see the masked logits
    /// (vLLM V1 applies its grammar bitmask the same way).
    public SamplerOutput Sample(Tensor logits, IReadOnlyList<SamplingState> rows, AllowedTokens? allowed = null)
    {
        if (logits.dim() != 2 || logits.shape[0] != rows.Count)
        {
            throw new ArgumentException(
                $"Expected logits of shape ({rows.Count}, vocab), got ({string.Join(", ", logits.shape)}).",
                nameof(logits));
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var raw = logits.to(ScalarType.Float32); // (numSeqs, vocab); may alias logits when already float32
        if (allowed is not null)
            raw = Masked(raw, allowed); // a new tensor: the caller's logits stay as they were
        // the processors change their logits in place: a copy of their own only while the raw logits are still wanted
        // (log-probabilities) or are the caller's (float32 logits, unmasked, come through `to` as themselves)
        var keepsRaw = rows.Any(row => row.Params.Logprobs is not null) || (allowed is null && logits.dtype == ScalarType.Float32);
        var processed = keepsRaw ? raw.clone() : raw; // (numSeqs, vocab)
        LogitsProcessors.Apply(processed, rows);
        var chosen = ChooseTokens(processed, rows); // (numSeqs) int64
        if (allowed is null)
            return new SamplerOutput(chosen.to(ScalarType.Int32).cpu().data<int>().ToArray(), LogprobGatherer.Gather(raw, chosen, rows));
        // under a grammar the rows with nothing to sample (-inf throughout) come to the host in the tokens' one copy
        var noToken = processed.amax([-1]).isneginf().to(ScalarType.Int64); // (numSeqs)
        var copied = stack([chosen, noToken]).to(ScalarType.Int32).cpu().data<int>().ToArray(); // (2 * numSeqs)
        var numRows = rows.Count;
        return new SamplerOutput(copied[..numRows], LogprobGatherer.Gather(raw, chosen, rows))
        {
            RowsWithNoToken = [.. Enumerable.Range(0, numRows).Where(row => copied[numRows + row] != 0)],
        };
    }

    /// logits with -inf where the packed mask has a 0 bit. The bits are unpacked on the logits' device: one
    /// small upload (vocab / 8 bytes per row) instead of a boolean per token.
    static Tensor Masked(Tensor logits, AllowedTokens allowed)
    {
        var (numRows, vocab) = (logits.shape[0], logits.shape[1]);
        if (allowed.NumRows != numRows || allowed.RowBytes * 8L < vocab)
            throw new ArgumentException($"allowed-token masks of {allowed.NumRows} x {allowed.RowBytes * 8} for logits of {numRows} x {vocab}");
        var packed = tensor(allowed.Bits, [numRows, allowed.RowBytes], ScalarType.Byte).to(logits.device); // (numSeqs, vocab / 8)
        var bitValues = tensor(new byte[] { 1, 2, 4, 8, 16, 32, 64, 128 }, ScalarType.Byte).to(logits.device); // (8)
        var bits = packed.unsqueeze(-1).bitwise_and(bitValues).ne(HeldScalars.Zero) // (numSeqs, vocab / 8, 8)
            .reshape(numRows, allowed.RowBytes * 8L)[.., ..(int)vocab]; // (numSeqs, vocab)
        return logits.masked_fill(bits.logical_not(), HeldScalars.MinusInfinity);
    }

    /// (numSeqs) int64: argmax for greedy rows, a random draw for the others.
    static Tensor ChooseTokens(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        var greedy = rows.Select(r => r.Params.IsGreedy).ToArray();
        if (greedy.All(g => g))
        {
            return logits.argmax(-1);
        }
        var sampled = SampleRandom(logits, rows);
        if (!greedy.Any(g => g))
        {
            return sampled;
        }
        var greedyRows = tensor(greedy, device: logits.device); // (numSeqs)
        return where(greedyRows, logits.argmax(-1), sampled);
    }

    /// (numSeqs) int64. Greedy rows get neutral parameters here; ChooseTokens discards their draw.
    static Tensor SampleRandom(Tensor logits, IReadOnlyList<SamplingState> rows)
    {
        var device = logits.device;
        var vocab = logits.shape[1];
        var random = rows.Select(r => r.Params.IsGreedy ? Unfiltered : r.Params).ToArray();
        var scaled = logits / ParameterColumn(random, p => p.Temperature, device); // (numSeqs, vocab)
        if (random.Any(p => p.MinP > 0f))
        {
            ProbabilityFilters.ApplyMinP(scaled, ParameterColumn(random, p => p.MinP, device));
        }
        var topK = random.Any(p => p.TopK > 0 && p.TopK < vocab)
            ? tensor(random.Select(p => p.TopK > 0 ? Math.Min(p.TopK, vocab) : vocab).ToArray(), device: device)
                .unsqueeze(1) // (numSeqs, 1)
            : null;
        var topP = random.Any(p => p.TopP < 1f) ? ParameterColumn(random, p => p.TopP, device) : null;
        ProbabilityFilters.ApplyTopKTopP(scaled, topK, topP);
        var probs = scaled.softmax(-1); // (numSeqs, vocab)
        return probs.div_(ExponentialNoise(probs, rows)).argmax(-1);
    }

    /// (numSeqs, vocab) draws of Exponential(1). Rows without a seed use the device's default generator;
    /// seeded rows draw on the CPU from their token's generator (one host-to-device copy for all of them).
    static Tensor ExponentialNoise(Tensor probs, IReadOnlyList<SamplingState> rows)
    {
        var noise = empty_like(probs).exponential_(1.0); // (numSeqs, vocab)
        var seeded = Enumerable.Range(0, rows.Count)
            .Where(i => !rows[i].Params.IsGreedy && rows[i].HasSeed).ToArray();
        if (seeded.Length == 0)
        {
            return noise.clamp_min_(MinNoise);
        }
        var seededNoise = empty([seeded.Length, probs.shape[1]], ScalarType.Float32); // (numSeeded, vocab), CPU
        for (var j = 0; j < seeded.Length; j++)
        {
            using var generator = rows[seeded[j]].NextTokenGenerator();
            seededNoise[j].exponential_(1.0, generator);
        }
        var index = tensor(seeded.Select(i => (long)i).ToArray(), device: probs.device); // (numSeeded)
        return noise.index_copy_(0, index, seededNoise.to(probs.device)).clamp_min_(MinNoise);
    }

    /// (numSeqs, 1) float32 column of one parameter, to broadcast over the vocabulary.
    internal static Tensor ParameterColumn(IEnumerable<SamplingParams> rows, Func<SamplingParams, float> select,
        Device device) => tensor(rows.Select(select).ToArray(), device: device).unsqueeze(1);
}
