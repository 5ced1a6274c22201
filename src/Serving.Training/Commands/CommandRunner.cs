using System.CommandLine;
using Spectre.Console;

namespace Serving.Training.Commands;

/// Runs a parsed command line; a user mistake (bad option value, missing file, unsupported config) ends with its
/// message and exit code 2 instead of a stack trace.
internal static class CommandRunner
{
    public static int Invoke(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        var configuration = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        try
        {
            return parse.Invoke(configuration);
        }
        catch (Exception error) when (error is ArgumentException or IOException or Engine.Config.ModelConfigException
            or Engine.Weights.CheckpointException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(error.Message)}");
            return 2;
        }
    }
}
