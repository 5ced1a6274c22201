using System.CommandLine;
using Spectre.Console;

namespace Serving.LoadGen.Commands;

/// Runs a parsed command line; a user mistake (bad option value, unreachable server, unknown model) ends with
/// its message and exit code 2 instead of a stack trace.
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
        catch (Exception error) when (error is ArgumentException or HttpRequestException or IOException or Engine.Config.ModelConfigException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(error.Message)}");
            return 2;
        }
    }
}
