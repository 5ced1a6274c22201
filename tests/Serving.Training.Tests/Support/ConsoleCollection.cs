namespace Serving.Training.Tests.Support;

/// Tests that run commands with a live console display (Spectre's progress and status): one such display may run at
/// a time in a process, so these classes never run in parallel with each other.
[CollectionDefinition(Name)]
public sealed class ConsoleCollection
{
    public const string Name = "live console display";
}
