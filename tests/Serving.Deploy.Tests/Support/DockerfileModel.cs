using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serving.Deploy.Tests.Support;

/// A Dockerfile for one set of build arguments: its instructions (continuations joined, comments dropped)
/// and what the image it builds sets: environment, exposed ports, health check, entrypoint and command.
/// The image's instructions are the final stage's, preceded by those of the stages it is built FROM.
internal sealed partial class DockerfileModel
{
    public sealed record Instruction(string Keyword, string Arguments);

    sealed record Stage(string From, string? Name, List<Instruction> Instructions);

    readonly List<Stage> _stages;
    readonly Dictionary<string, string> _args;

    public DockerfileModel(string text, IReadOnlyDictionary<string, string>? buildArgs = null)
    {
        Instructions = Parse(text);
        _args = Instructions.TakeWhile(i => i.Keyword != "FROM").Where(i => i.Keyword == "ARG")
            .Select(i => i.Arguments.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        foreach (var (key, value) in buildArgs ?? new Dictionary<string, string>()) _args[key] = value;
        _stages = SplitStages(Instructions);
        FinalStage = Chain(_stages[^1]);
    }

    public List<Instruction> Instructions { get; }

    /// The instructions that make the image: the final stage's, after those of the stages under it.
    public List<Instruction> FinalStage { get; }

    public IReadOnlyDictionary<string, string> Environment => FinalStage.Where(i => i.Keyword == "ENV")
        .SelectMany(i => EnvPair().Matches(i.Arguments))
        .Aggregate(new Dictionary<string, string>(), (env, m) =>
        {
            env[m.Groups["key"].Value] = m.Groups["value"].Value.Trim('"');
            return env;
        });

    public IReadOnlyList<int> ExposedPorts => FinalStage.Where(i => i.Keyword == "EXPOSE")
        .SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Select(p => int.Parse(p.Split('/')[0])).ToList();

    public string? HealthCheck => FinalStage.LastOrDefault(i => i.Keyword == "HEALTHCHECK")?.Arguments;

    public string? StopSignal => FinalStage.LastOrDefault(i => i.Keyword == "STOPSIGNAL")?.Arguments;

    public IReadOnlyList<string> Entrypoint => ExecForm("ENTRYPOINT");

    public IReadOnlyList<string> Cmd => ExecForm("CMD");

    /// ENTRYPOINT followed by CMD: the argv the container starts with.
    public IReadOnlyList<string> StartCommand => [.. Entrypoint, .. Cmd];

    /// The stage's base after ARG substitution: "runtime-${TORCH_FLAVOUR}" is runtime-cpu for the cpu build.
    string BaseOf(Stage stage) => BuildArg().Replace(stage.From, m => _args[m.Groups["name"].Value]);

    List<Instruction> Chain(Stage stage) =>
        _stages.FirstOrDefault(s => s.Name == BaseOf(stage)) is { } under
            ? [.. Chain(under), .. stage.Instructions]
            : stage.Instructions;

    IReadOnlyList<string> ExecForm(string keyword)
    {
        var instruction = FinalStage.LastOrDefault(i => i.Keyword == keyword);
        if (instruction == null) return [];
        if (!instruction.Arguments.StartsWith('['))
            throw new FormatException($"{keyword} must use the exec (JSON) form so signals reach the server");
        return JsonSerializer.Deserialize<string[]>(instruction.Arguments)!;
    }

    static List<Stage> SplitStages(List<Instruction> instructions)
    {
        var stages = new List<Stage>();
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                var words = instruction.Arguments.Split(' ');
                var nameAt = Array.FindIndex(words, w => w.Equals("AS", StringComparison.OrdinalIgnoreCase));
                var from = words.Where(w => !w.StartsWith("--", StringComparison.Ordinal)).First();
                stages.Add(new Stage(from, nameAt >= 0 ? words[nameAt + 1] : null, []));
            }
            else if (stages.Count > 0) stages[^1].Instructions.Add(instruction);
        }
        return stages;
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

    [GeneratedRegex(@"\$\{(?<name>\w+)\}")]
    private static partial Regex BuildArg();
}
