using System.Text.Json;

namespace Serving.Engine.Tokenization.HuggingFace;

/// Strip removes up to Start leading Content characters (the space SentencePiece put in front of the text).
/// Applied to each token, unless an earlier step fused the tokens: then only the start of the whole text.
internal sealed class StripStep(char content, int start) : IDecoderStep
{
    public static StripStep FromJson(JsonElement json)
    {
        var stop = json.GetProperty("stop").GetInt32();
        if (stop != 0) throw new NotSupportedException("tokenizer.json: Strip decoder with stop > 0 is not supported");
        return new StripStep(json.GetProperty("content").GetString()![0], json.GetProperty("start").GetInt32());
    }

    public bool Fuses => false;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) =>
        new Stage(emit, content, start, perToken: !context.Fused, context.AtStart ? start : 0);

    sealed class Stage(Action<string> emit, char content, int start, bool perToken, int remaining) : DecodeStage(emit)
    {
        int _remaining = remaining;

        public override void Push(string token)
        {
            if (perToken) _remaining = start;
            var cut = 0;
            while (_remaining > 0 && cut < token.Length)
            {
                if (token[cut] != content)
                {
                    _remaining = 0;
                    break;
                }
                cut++;
                _remaining--;
            }
            Emit(token[cut..]);
        }
    }
}

/// Metaspace decoding: "▁" reads as a space, except in the first token of the text, where the reference drops
/// every "▁" when a prefix was prepended at encoding.
internal sealed class MetaspaceStep(char replacement, MetaspacePrependScheme scheme) : IDecoderStep
{
    public bool Fuses => false;

    public DecodeStage CreateStage(Action<string> emit, DecodeStageContext context) =>
        new Stage(emit, replacement, context.AtStart && scheme != MetaspacePrependScheme.Never);

    sealed class Stage(Action<string> emit, char replacement, bool dropInFirst) : DecodeStage(emit)
    {
        bool _first = true;

        public override void Push(string token)
        {
            Emit(_first && dropInFirst ? token.Replace(replacement.ToString(), "") : token.Replace(replacement, ' '));
            _first = false;
        }
    }
}
