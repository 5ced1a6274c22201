using Serving.Engine;
using Serving.Server.Options;

namespace Serving.Server.Generation;

/// What a request is checked against: the model's vocabulary and context, and the server's configured caps.
/// MaxQueuedSeqs is the engine's waiting-queue bound: a request with more sequences could never be queued.
internal sealed record RequestLimits(int VocabSize, int MaxModelLen, int MaxN, int MaxLogprobs, int MaxStopSequences,
    int MaxPromptsPerRequest, int MaxSeqsPerRequest, int MaxQueuedSeqs)
{
    public static RequestLimits From(ModelInfo model, ServerOptions options) =>
        new(model.VocabSize, model.MaxModelLen, options.MaxN, options.MaxLogprobs, options.MaxStopSequences,
            options.MaxPromptsPerRequest, options.MaxSeqsPerRequest, options.MaxNumQueuedReqs);
}
