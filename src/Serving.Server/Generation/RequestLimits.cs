using Serving.Engine;
using Serving.Engine.Config;
using Serving.Server.Options;

namespace Serving.Server.Generation;

/// What a request is checked against: the model's vocabulary and context, and the server's configured caps.
/// MaxQueuedSeqs is the engine's waiting-queue bound: a request with more sequences could never be queued.
/// Defaults are the model's sampling defaults for the fields a request leaves out.
internal sealed record RequestLimits(int VocabSize, int MaxModelLen, int MaxN, int MaxLogprobs, int MaxStopSequences,
    int MaxPromptsPerRequest, int MaxSeqsPerRequest, int MaxQueuedSeqs)
{
    public SamplingDefaults Defaults { get; init; } = SamplingDefaults.None;

    public static RequestLimits From(ModelInfo model, ServerOptions options) =>
        new(model.VocabSize, model.MaxModelLen, options.MaxN, options.MaxLogprobs, options.MaxStopSequences,
            options.MaxPromptsPerRequest, options.MaxSeqsPerRequest, options.MaxNumQueuedReqs)
        {
            Defaults = model.SamplingDefaults,
        };
}
