using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serving.Deploy.Tests.Support;

/// The instructions of a Dockerfile (continuations joined, comments dropped) and what the final stage
/// sets: environment, exposed ports, health check, entrypoint and command.
internal sealed partial class DockerfileModel
{
    public sealed record Instruction(string Keyword, string Arguments);

    public DockerfileModel(string text)
    {
        Instructions = Parse(text);
        var lastFrom = Instructions.FindLastIndex(i => i.Keyword == "FROM");
        FinalStage = Instructions.Skip(lastFrom).ToList();
    }

    public List<Instruction> Instructions { get; }

    public List<Instruction> FinalStage { get; }

    public IReadOnlyDictionary<string, string> Environment => FinalStage.Where(i => i.Keyword == "ENV")
        .SelectMany(i => EnvPair().Matches(i.Arguments))
        .ToDictionary(m => m.Groups["key"].Value, m => m.Groups["value"].Value.Trim('"'));

    public IReadOnlyList<int> ExposedPorts => FinalStage.Where(i => i.Keyword == "EXPOSE")
        .SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Select(p => int.Parse(p.Split('/')[0])).ToList();

    public string? HealthCheck => FinalStage.LastOrDefault(i => i.Keyword == "HEALTHCHECK")?.Arguments;

    public string? StopSignal => FinalStage.LastOrDefault(i => i.Keyword == "STOPSIGNAL")?.Arguments;

    public IReadOnlyList<string> Entrypoint => ExecForm("ENTRYPOINT");

    public IReadOnlyList<string> Cmd => ExecForm("CMD");

    /// ENTRYPOINT followed by CMD: the argv the container starts with.
    public IReadOnlyList<string> StartCommand => [.. Entrypoint, .. Cmd];

    IReadOnlyList<string> ExecForm(string keyword)
    {
        var instruction = FinalStage.LastOrDefault(i => i.Keyword == keyword);
        if (instruction == null) return [];
        if (!instruction.Arguments.StartsWith('['))
            throw new FormatException($"{keyword} must use the exec (JSON) form so signals reach the server");
        return JsonSerializer.Deserialize<string[]>(instruction.Arguments)!;
    }

    static List<Instruction> Parse(string text)
    {
        var instructions = new List<Instruction>();
        var current = "";
        foreach (var rawLine in text.Split('\n'))
        {
            var line = rawLine.TrimEnd('\r');
            if (line.TrimStart().StartsWith('#')) continue;
            if (line.EndsWith('\\')) { current += line[..^1] + " "; continue; }
            current += line;
            if (!string.IsNullOrWhiteSpace(current))
            {
                var trimmed = current.Trim();
                var space = trimmed.IndexOfAny([' ', '\t']);
                instructions.Add(space < 0 ? new Instruction(trimmed.ToUpperInvariant(), "")
                    : new Instruction(trimmed[..space].ToUpperInvariant(), Regex.Replace(trimmed[space..].Trim(), @"\s+", " ")));
            }
            current = "";
        }
        return instructions;
    }

    [GeneratedRegex("""(?<key>[A-Za-z_][A-Za-z0-9_]*)=(?<value>"[^"]*"|\S+)""")]
    private static partial Regex EnvPair();
}
