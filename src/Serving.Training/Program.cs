using System.CommandLine;
using Serving.Training.Commands;
using Spectre.Console;

// serving-training: the corpus, the tokenizer, pretraining and uptraining of the engine's own decoder, the
// checkpoint tools (convert, init), and the GQA experiment with its report.
var root = new RootCommand("Training and checkpoint tools for the serving engine (GQA: Ainslie et al., 2023).")
{
    CorpusCommands.Corpus(), CorpusCommands.Tokenizer(), CorpusCommands.Tokenize(),
    TrainCommand.Train(), TrainCommand.Uptrain(), EvalCommand.Create(),
    ConvertCommand.Create(), InitCommand.Create(), SampleCommand.Create(),
    ExperimentCommand.Create(), ReportCommands.Report(), ReportCommands.ExportDefault(),
};
// redirected output (a log file, CI) would otherwise be wrapped at 80 columns
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
return CommandRunner.Invoke(root, args);
