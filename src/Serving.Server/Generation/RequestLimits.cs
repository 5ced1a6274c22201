using Serving.Engine;
using Serving.Server.Options;

namespace Serving.Server.Generation;

/// What a request is checked against: the model's vocabulary and context, and the server's configured caps.
internal sealed record RequestLimits(int VocabSize, int MaxModelLen, int MaxN, int MaxLogprobs, int MaxStopSequences)
{
    public static RequestLimits From(ModelInfo model, ServerOptions options) =>
        new(model.VocabSize, model.MaxModelLen, options.MaxN, options.MaxLogprobs, options.MaxStopSequences);
}
