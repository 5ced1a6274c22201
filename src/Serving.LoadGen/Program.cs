using System.CommandLine;
using Serving.LoadGen.Commands;
using Spectre.Console;

// bench: load generator (serve, compare), checkpoint tools (convert, init) and a streaming client (generate).
var root = new RootCommand("Load generator and checkpoint tools for the serving engine.")
{
    ServeCommand.Create(), CompareCommand.Create(), ChartCommand.Create(), ConvertCommand.Create(), InitCommand.Create(),
    GenerateCommand.Create(), SoakCommand.Create(),
};
// redirected output (a log file, CI) would otherwise be wrapped at 80 columns
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
return await CommandRunner.InvokeAsync(root, args);
