using System.CommandLine;
using Serving.LoadGen.Commands;

// bench: load generator (serve, compare), checkpoint tools (convert, init) and a streaming client (generate).
var root = new RootCommand("Load generator and checkpoint tools for the serving engine.")
{
    ServeCommand.Create(), CompareCommand.Create(), ConvertCommand.Create(), InitCommand.Create(), GenerateCommand.Create(),
};
return await CommandRunner.InvokeAsync(root, args);
