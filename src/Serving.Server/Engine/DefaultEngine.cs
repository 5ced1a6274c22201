using Serving.Engine;

namespace Serving.Server.Engine;

/// The production engine factory: LlmEngine starts loading the model on its own thread and returns at once.
public static class DefaultEngine
{
    public static ILlmEngine Create(EngineOptions options, ILoggerFactory loggerFactory) => new LlmEngine(options, loggerFactory);
}
