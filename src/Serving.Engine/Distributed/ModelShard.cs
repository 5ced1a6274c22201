using Serving.Engine.Config;
using Serving.Engine.Weights;

namespace Serving.Engine.Distributed;

/// One rank's part of a model under tensor parallelism over Size ranks (Megatron-LM's split, vLLM's rules for KV
/// heads and the vocabulary). Rank r holds query heads [r H/N, (r+1) H/N), the KV heads those use (G/N of them, or
/// the one they share when N exceeds G: vLLM replicates it), ffn columns [r I/N, (r+1) I/N) and vocabulary rows
/// [r V', (r+1) V') with V' = ceil(V / N) (the last rank's rows past V are zero padding). Config is what the rank
/// computes: the same decoder with those smaller shapes. At Size 1 the shard is the whole model.
public sealed class ModelShard
{
    ModelShard(ModelConfig model, int rank, int size)
    {
        (Model, Rank, Size) = (model, rank, size);
        NumHeads = model.NumAttentionHeads / size;
        NumKVHeads = Math.Max(1, model.NumKeyValueHeads / size);
        IntermediateSize = model.IntermediateSize / size;
        VocabRows = (model.VocabSize + size - 1) / size;
        Config = size == 1 ? model : model with
        {
            NumAttentionHeads = NumHeads,
            NumKeyValueHeads = NumKVHeads,
            IntermediateSize = IntermediateSize,
            VocabSize = VocabRows,
        };
    }

    /// The whole model's config (what config.json says).
    public ModelConfig Model { get; }
    public int Rank { get; }
    public int Size { get; }
    /// What this rank computes: heads, KV heads, ffn width and vocabulary rows of its part.
    public ModelConfig Config { get; }

    public int NumHeads { get; }
    public int NumKVHeads { get; }
    public int IntermediateSize { get; }
    /// Rows of the embedding table and LM head each rank holds: ceil(V / N).
    public int VocabRows { get; }

    /// The first query head of this rank.
    public int FirstHead => Rank * NumHeads;
    /// The KV head of the first query head: KV heads are split like the query heads, or replicated when N > G
    /// (ranks r N/G .. (r+1) N/G - 1 then share KV head r), as transformers' repeat_kv pairs them.
    public int FirstKVHead => FirstHead / Model.NumQueriesPerKV;
    /// How many ranks hold a copy of each KV head (1 unless N exceeds the KV heads).
    public int KVHeadReplicas => Size / Math.Min(Size, Model.NumKeyValueHeads);
    public int FirstIntermediate => Rank * IntermediateSize;
    /// The first vocabulary id whose embedding row and logit this rank holds.
    public int VocabStart => Rank * VocabRows;
    /// Vocabulary rows of this rank that are real ids (the rest of VocabRows is padding).
    public int VocabRowsInUse => Math.Clamp(Model.VocabSize - VocabStart, 0, VocabRows);

    /// The whole model as one rank.
    public static ModelShard Whole(ModelConfig model) => new(model, 0, 1);

    /// Rank `rank` of `size` ranks; a size the model cannot be split into fails naming both numbers.
    public static ModelShard Of(ModelConfig model, int rank, int size)
    {
        Check(model, size);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, size);
        return new ModelShard(model, rank, size);
    }

    /// Whether the model splits over size ranks: size divides the query heads and the ffn width, and the KV heads
    /// divide evenly (size divides them, or they divide size and are replicated). ModelLoadException otherwise.
    public static void Check(ModelConfig model, int size)
    {
        if (size < 1)
            throw new ModelLoadException($"--tensor-parallel-size must be at least 1, not {size}");
        if (size > 1 && model.NumExperts > 0)
            throw new ModelLoadException($"--tensor-parallel-size {size}: a mixture-of-experts model ({model.Architecture}) runs on one device");
        if (size > 1 && model.QkNorm == QkNorm.WholeProjection)
            throw new ModelLoadException($"--tensor-parallel-size {size}: {model.Architecture} norms q and k over every head at once, so it runs on one device");
        if (model.NumAttentionHeads % size != 0)
            throw new ModelLoadException(
                $"--tensor-parallel-size {size} does not divide the model's {model.NumAttentionHeads} query heads (num_attention_heads)");
        var kvHeads = model.NumKeyValueHeads;
        if (kvHeads >= size ? kvHeads % size != 0 : size % kvHeads != 0)
            throw new ModelLoadException(
                $"--tensor-parallel-size {size} and the model's {kvHeads} KV heads (num_key_value_heads) do not divide one another, " +
                "so the KV heads can be neither split nor replicated evenly");
        if (model.IntermediateSize % size != 0)
            throw new ModelLoadException(
                $"--tensor-parallel-size {size} does not divide the model's ffn width {model.IntermediateSize} (intermediate_size)");
    }

    /// The parts of a checkpoint tensor this rank loads and the rows of its parameter each one fills. At Size 1: the
    /// whole tensor into the binding's rows.
    internal IReadOnlyList<ShardCopy> Copies(WeightBinding binding)
    {
        var whole = new ShardCopy(TensorSlice.Whole(binding.Shape), binding.RowOffset);
        if (Size == 1) return [whole];
        return ShardingRules.StyleOf(binding.ParameterName) switch
        {
            ParallelStyle.Replicated => [whole],
            ParallelStyle.Vocabulary => VocabularyRows(),
            ParallelStyle.OutputRows => binding.Segments.Select(segment => OutputRows(binding, segment)).ToArray(),
            ParallelStyle.InputColumns => [InputColumns(binding)],
            ParallelStyle.FirstRankOnly => Rank == 0 ? [whole] : [],
            ParallelStyle.HeadNorms => binding.Shape.Length == 1 ? [whole] : [HeadRows(binding)],
            var style => throw new InvalidOperationException($"no sharding rule for {style}"),
        };
    }

    /// Rows of a parameter no checkpoint data fills on this rank (left zero): vocabulary padding, and the biases of
    /// row-parallel layers on every rank but the first (the bias is added once, before the all-reduce sums).
    internal long ZeroRows(string parameterName, long rows) => Size == 1 ? 0 : ShardingRules.StyleOf(parameterName) switch
    {
        ParallelStyle.Vocabulary => VocabRows - VocabRowsInUse,
        ParallelStyle.FirstRankOnly => Rank == 0 ? 0 : rows,
        _ => 0,
    };

    ShardCopy[] VocabularyRows() =>
        VocabRowsInUse == 0 ? [] : [new ShardCopy(new TensorSlice(0, VocabStart, VocabRowsInUse), 0)];

    // Column parallel (qkv_proj, gate_up_proj): this rank's heads or ffn rows of each kind, placed where the rank's
    // fused parameter keeps that kind ([q | k | v], [gate | up]).
    ShardCopy OutputRows(WeightBinding binding, RowSegment segment)
    {
        if (segment.Rows != WholeRows(segment.Kind))
            throw new InvalidOperationException(
                $"cannot shard '{binding.CheckpointName}': its {segment.Kind} rows ({segment.Rows}) are not all of that kind's {WholeRows(segment.Kind)}");
        var (start, length) = RankRows(segment.Kind);
        return new ShardCopy(new TensorSlice(0, segment.Start + start, length), LocalOffset(segment.Kind));
    }

    // A weight per head (Command R+'s q/k norms, (heads, head_dim)): the rows of this rank's query or KV heads.
    ShardCopy HeadRows(WeightBinding binding)
    {
        var keys = binding.ParameterName.EndsWith("k_norm.weight", StringComparison.Ordinal);
        var (first, count) = keys ? (FirstKVHead, NumKVHeads) : (FirstHead, NumHeads);
        return new ShardCopy(new TensorSlice(0, first, count), 0);
    }

    // Row parallel (o_proj, down_proj): the input columns that meet this rank's heads or ffn rows.
    ShardCopy InputColumns(WeightBinding binding)
    {
        var kind = ShardingRules.InputKindOf(binding.ParameterName);
        var (start, length) = RankRows(kind);
        return new ShardCopy(new TensorSlice(1, start, length), binding.RowOffset);
    }

    long WholeRows(RowKind kind) => kind switch
    {
        RowKind.QueryHeads => Model.QSize,
        RowKind.KeyHeads or RowKind.ValueHeads => Model.KVSize,
        RowKind.Gate or RowKind.Up => Model.IntermediateSize,
        _ => throw new InvalidOperationException($"rows of kind {kind} cannot be split over ranks"),
    };

    // (first row, rows) of this rank's part of one kind of rows
    (long Start, long Length) RankRows(RowKind kind) => kind switch
    {
        RowKind.QueryHeads => ((long)FirstHead * Model.HeadDim, (long)NumHeads * Model.HeadDim),
        RowKind.KeyHeads or RowKind.ValueHeads => ((long)FirstKVHead * Model.HeadDim, (long)NumKVHeads * Model.HeadDim),
        RowKind.Gate or RowKind.Up => (FirstIntermediate, IntermediateSize),
        _ => throw new InvalidOperationException($"rows of kind {kind} cannot be split over ranks"),
    };

    long LocalOffset(RowKind kind) => kind switch
    {
        RowKind.QueryHeads or RowKind.Gate => 0,
        RowKind.KeyHeads => Config.QSize,
        RowKind.ValueHeads => Config.QSize + Config.KVSize,
        RowKind.Up => Model.GatedMlp ? Config.IntermediateSize : 0,   // after the gate rows; an ungated MLP's up_proj is its own
        _ => throw new InvalidOperationException($"rows of kind {kind} cannot be split over ranks"),
    };
}

/// A part of a checkpoint tensor and the first row of the rank's parameter it fills.
internal readonly record struct ShardCopy(TensorSlice Slice, long DestinationRow);
