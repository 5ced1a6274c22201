using System.CommandLine;
using Grpc.Core;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// Runs a parsed command line; a user mistake (bad option value, unreachable server over HTTP or gRPC, unknown
/// model) ends with its message and exit code 2 instead of a stack trace.
internal static class CommandRunner
{
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        var configuration = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        try
        {
            return await parse.InvokeAsync(configuration);
        }
        catch (Exception error) when (error is ArgumentException or HttpRequestException or IOException or RpcException
            or Engine.Config.ModelConfigException)
        {
            var message = error is RpcException call ? $"gRPC {call.StatusCode}: {call.Status.Detail}" : error.Message;
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(message)}");
            return 2;
        }
    }
}
