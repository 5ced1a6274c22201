using System.CommandLine;
using Serving.Server;
using Serving.Server.Engine;
using Serving.Server.Options;

// Parse vLLM-style flags (--help lists them; --config FILE reads more from YAML), then serve until SIGTERM.
var command = ServerCommandLine.Create((flags, _) => ServerApp.RunAsync(flags, DefaultEngine.Create));
// The host handles SIGTERM and Ctrl+C itself (to drain), so the parser must not.
return await ServerCommandLine.Parse(command, args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
