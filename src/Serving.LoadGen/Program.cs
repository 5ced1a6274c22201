using System.CommandLine;
using Serving.LoadGen.Commands;
using Spectre.Console;

// bench: load generator (serve, compare, chart) and a streaming client (generate); the checkpoint tools (convert,
// init) live in Serving.Training.
var root = new RootCommand("Load generator for the serving engine.")
{
    ServeCommand.Create(), CompareCommand.Create(), ChartCommand.Create(), GenerateCommand.Create(), SoakCommand.Create(),
};
// redirected output (a log file, CI) would otherwise be wrapped at 80 columns
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
return await CommandRunner.InvokeAsync(root, args);
