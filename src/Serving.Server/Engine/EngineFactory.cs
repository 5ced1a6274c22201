using Serving.Engine;

namespace Serving.Server.Engine;

/// Creates the engine (which starts loading the model on its own thread and returns at once).
/// Tests pass their own to wrap the real engine.
public delegate ILlmEngine EngineFactory(EngineOptions options, ILoggerFactory loggerFactory);
