using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// One step of tokenizers' decoder chain (the "decoder" of tokenizer.json), as a recipe: each decode stream
/// builds its own stateful stage from it.
internal interface IDecoderStep
{
    /// True when the step joins all tokens into one text (Fuse, ByteLevel): later steps then see one text.
    bool Fuses { get; }

    DecodeStage CreateStage(Action<string> emit, DecodeStageContext context);
}

/// atStart: the stream opens the text. fused: an earlier step joined the tokens into one text.
internal readonly record struct DecodeStageContext(bool AtStart, bool Fused);

/// A running decoder step: takes tokens (or text from the step before) left to right and emits text to the
/// next step. Flush: the input has ended; emit what was held back.
internal abstract class DecodeStage(Action<string> emit)
{
    protected Action<string> Emit { get; } = emit;

    public abstract void Push(string token);

    public virtual void Flush() { }
}

internal static class Decoders
{
    /// The steps of the "decoder" object; without one, tokenizers joins the tokens with spaces.
    public static IReadOnlyList<IDecoderStep> FromJson(JsonElement json)
    {
        if (json.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return [new JoinWithSpaceStep()];
        var steps = new List<IDecoderStep>();
        Add(json, steps);
        return steps;
    }

    static void Add(JsonElement json, List<IDecoderStep> steps)
    {
        var type = json.GetProperty("type").GetString();
        switch (type)
        {
            case "Sequence":
                foreach (var inner in json.GetProperty("decoders").EnumerateArray()) Add(inner, steps);
                break;
            case "ByteLevel": steps.Add(new ByteLevelStep()); break;
            case "ByteFallback": steps.Add(new ByteFallbackStep()); break;
            case "Fuse": steps.Add(new FuseStep()); break;
            case "Replace":
                steps.Add(new ReplaceStep(TextPattern.FromJson(json.GetProperty("pattern")), json.GetProperty("content").GetString()!));
                break;
            case "Strip": steps.Add(StripStep.FromJson(json)); break;
            case "Metaspace":
                steps.Add(new MetaspaceStep(json.GetProperty("replacement").GetString()![0], MetaspacePreTokenizer.PrependSchemeOf(json)));
                break;
            default:
                throw new NotSupportedException($"tokenizer.json: decoder type '{type}' is not supported");
        }
    }
}

/// Token characters back to bytes through the byte-level alphabet; the bytes of all tokens form one UTF-8
/// text where invalid sequences read as U+FFFD (the reference's from_utf8_lossy). The stateful UTF-8 decoder
/// holds an unfinished character until its last byte arrives.
internal sealed class ByteLevelStep : IDecoderStep
{
    public bool Fuses => true;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) => new Stage(emit);

    sealed class Stage(Action<string> emit) : DecodeStage(emit)
    {
        readonly System.Text.Decoder _utf8 = new System.Text.UTF8Encoding(false, false).GetDecoder();

        public override void Push(string token) => Decode(ByteLevelAlphabet.Decode(token), flush: false);

        public override void Flush() => Decode([], flush: true);

        void Decode(byte[] bytes, bool flush)
        {
            var chars = new char[_utf8.GetCharCount(bytes, flush)];
            var count = _utf8.GetChars(bytes, chars, flush);
            if (count > 0) Emit(new string(chars, 0, count));
        }
    }
}

/// Consecutive "<0xAB>" tokens are gathered into bytes; a run that is valid UTF-8 becomes its text, any other
/// run one U+FFFD per byte (as tokenizers does). The run is held until a non-byte token or the end closes it.
internal sealed class ByteFallbackStep : IDecoderStep
{
    public bool Fuses => false;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) => new Stage(emit);

    sealed class Stage(Action<string> emit) : DecodeStage(emit)
    {
        readonly List<byte> _run = [];

        public override void Push(string token)
        {
            if (Utf8Text.TryParseByteToken(token, out var value))
            {
                _run.Add(value);
                return;
            }
            CloseRun();
            Emit(token);
        }

        public override void Flush() => CloseRun();

        void CloseRun()
        {
            if (_run.Count == 0) return;
            Emit(Utf8Text.IsValid(_run) ? System.Text.Encoding.UTF8.GetString(_run.ToArray()) : new string('\uFFFD', _run.Count));
            _run.Clear();
        }
    }
}

/// Joins the tokens into one text; in a stream that is plain concatenation.
internal sealed class FuseStep : IDecoderStep
{
    public bool Fuses => true;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) => new PassThrough(emit);

    sealed class PassThrough(Action<string> emit) : DecodeStage(emit)
    {
        public override void Push(string token) => Emit(token);
    }
}

internal sealed class ReplaceStep(TextPattern pattern, string content) : IDecoderStep
{
    public bool Fuses => false;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) => new Stage(emit, pattern, content);

    sealed class Stage(Action<string> emit, TextPattern pattern, string content) : DecodeStage(emit)
    {
        public override void Push(string token) => Emit(pattern.ReplaceAll(token, content));
    }
}

/// No decoder in the file: tokenizers joins the tokens with spaces.
internal sealed class JoinWithSpaceStep : IDecoderStep
{
    public bool Fuses => true;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) => new Stage(emit, context.AtStart);

    sealed class Stage(Action<string> emit, bool atStart) : DecodeStage(emit)
    {
        bool _first = atStart;

        public override void Push(string token)
        {
            Emit(_first ? token : " " + token);
            _first = false;
        }
    }
}
