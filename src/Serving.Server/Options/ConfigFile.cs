using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Serving.Server.Options;

/// vLLM's `--config FILE`: a YAML mapping of long flag names (without the dashes) to values, read as if those flags
/// were on the command line, so `vllm serve --config config.yaml` runs here too. A flag the command line gives itself
/// keeps the command line's value (command line, then the file, then appsettings.json and the environment). Also as
/// vLLM's parser: a flag may be spelled with underscores (`--max_model_len`), on the command line and in the file.
static class ConfigFile
{
    public const string Flag = "--config";

    /// The --config option; its validator reports what is wrong with the file (no such file, not YAML, a key that is
    /// not a flag), so that the error comes as any other flag's would.
    public static Option<string> Option(RootCommand root)
    {
        var option = new Option<string>(Flag)
        {
            Description = "A YAML file of flags as vLLM's --config reads it: long flag names without the dashes, e.g. " +
                "`port: 8000`, `served-model-name: [a, b]`, `hf-overrides: {max_position_embeddings: 8192}`; flags on " +
                "the command line win over the file's.",
        };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string>() is not { } path) return;
            try { FlagsIn(path, root); }
            catch (ArgumentException e) { result.AddError(e.Message); }
        });
        return option;
    }

    /// args with underscores in flag names made dashes and `--config FILE` replaced by the file's flags, less those
    /// the command line gives itself. A file that cannot be read, or a command line that does not parse by itself,
    /// leaves `--config FILE` in place for the parser to report.
    public static string[] Expand(RootCommand root, string[] args)
    {
        var normalized = WithDashes(root, args);
        var options = OptionsPart(normalized);
        var at = Array.FindIndex(normalized, 0, options, IsConfig);
        if (at < 0) return normalized;
        var joined = normalized[at] != Flag;
        var path = joined ? normalized[at][(Flag.Length + 1)..] : at + 1 < options ? normalized[at + 1] : null;
        if (path is null) return normalized;
        var rest = normalized.Where((_, i) => i != at && !(!joined && i == at + 1)).ToArray();
        if (Array.FindIndex(rest, 0, OptionsPart(rest), IsConfig) >= 0) return normalized;  // the parser says it is given twice
        IReadOnlyList<(Option Option, string[] Tokens)> fromFile;
        try { fromFile = FlagsIn(path, root); }
        catch (ArgumentException) { return normalized; }
        var parse = root.Parse(rest, ServerCommandLine.Parsing);
        // an option left without its value would take the file's first flag as one
        if (parse.Errors.Count > 0) return normalized;
        var given = GivenOnTheCommandLine(root, parse);
        var added = fromFile.Where(f => !given.Contains(Switchless(f.Option.Name))).SelectMany(f => f.Tokens);
        // before an end-of-options "--", so that the file's flags stay flags
        var end = OptionsPart(rest);
        return [.. rest[..end], .. added, .. rest[end..]];
    }

    static bool IsConfig(string token) =>
        token == Flag || (token.Length > Flag.Length && token.StartsWith(Flag, StringComparison.Ordinal) && token[Flag.Length] is '=' or ':');

    /// How many tokens come before an end-of-options "--" (all of them without one).
    static int OptionsPart(string[] args) => Array.IndexOf(args, "--") is >= 0 and var end ? end : args.Length;

    /// The flags a file gives, each with its tokens; throws ArgumentException naming the file for what is wrong.
    static List<(Option Option, string[] Tokens)> FlagsIn(string path, RootCommand root)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{Flag} {path}: cannot be read ({e.Message})");
        }
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e) { throw new ArgumentException($"{Flag} {path}: not valid YAML ({e.Message})"); }
        if (stream.Documents is not [{ RootNode: YamlMappingNode mapping }])
            throw new ArgumentException($"{Flag} {path}: must hold one mapping of flag names to values (e.g. `port: 8000`)");
        var flags = new List<(Option, string[])>();
        foreach (var (keyNode, value) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            var name = "--" + key.Replace('_', '-');
            var option = root.Options.FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name));
            if (key.StartsWith('-') || option is null || option.Name == Flag || option is System.CommandLine.Help.HelpOption or VersionOption)
                throw new ArgumentException($"{Flag} {path}: '{key}' (line {keyNode.Start.Line}) is not a flag of this server " +
                    "(keys are long flag names without the dashes; --help lists them)");
            if (Tokens(option, value) is { } tokens) flags.Add((option, [option.Name, .. tokens]));
        }
        return flags;
    }

    /// A value's tokens: a scalar as written, a list as the flag's several values (or JSON for a one-value flag such as
    /// --allowed-origins), a mapping as JSON; null for an empty value, which sets nothing.
    static string[]? Tokens(Option option, YamlNode value) => value switch
    {
        YamlScalarNode scalar when IsNull(scalar) => null,
        YamlScalarNode scalar => [Boolean(scalar) is { } flag ? (flag ? "true" : "false") : scalar.Value ?? ""],
        YamlSequenceNode list when option.Arity.MaximumNumberOfValues > 1 =>
            list.Children.Where(item => item is not YamlScalarNode scalar || !IsNull(scalar)).Select(Text).ToArray() is { Length: > 0 } items ? items : null,
        _ => [Json(value)!.ToJsonString()],
    };

    static string Text(YamlNode node) => node is YamlScalarNode scalar ? scalar.Value ?? "" : Json(node)!.ToJsonString();

    /// A YAML node as JSON, as Python's yaml.safe_load reads plain scalars: null, booleans (yes/no and on/off too) and
    /// finite numbers as those, the rest as strings.
    static JsonNode? Json(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(p => KeyValuePair.Create(Text(p.Key), Json(p.Value)))),
        YamlSequenceNode list => new JsonArray([.. list.Children.Select(Json)]),
        YamlScalarNode scalar when IsNull(scalar) => null,
        YamlScalarNode scalar when Boolean(scalar) is { } flag => JsonValue.Create(flag),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: var plain } => plain switch
        {
            _ when long.TryParse(plain, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var whole) => JsonValue.Create(whole),
            _ when double.TryParse(plain, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number) => JsonValue.Create(number),
            _ => JsonValue.Create(plain),
        },
        YamlScalarNode scalar => JsonValue.Create(scalar.Value ?? ""),
        _ => null,
    };

    static bool IsNull(YamlScalarNode scalar) => scalar is { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    /// YAML 1.1's booleans, which yaml.safe_load reads (`enforce-eager: yes`); null for any other scalar.
    static bool? Boolean(YamlScalarNode scalar) => scalar is { Style: ScalarStyle.Plain, Value: { } plain } ? plain switch
    {
        "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON" => true,
        "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF" => false,
        _ => null,
    } : null;

    /// The command line's flags, by name without a "no-" (so --no-enable-prefix-caching overrides enable-prefix-caching);
    /// "--model" also when the model comes first as `vllm serve MODEL`.
    static HashSet<string> GivenOnTheCommandLine(RootCommand root, ParseResult parse)
    {
        var given = root.Options.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => Switchless(o.Name)).ToHashSet(StringComparer.Ordinal);
        if (root.Arguments.Any(a => parse.GetResult(a) is { Tokens.Count: > 0 })) given.Add("--model");
        return given;
    }

    static string Switchless(string name) => name.StartsWith("--no-", StringComparison.Ordinal) ? "--" + name[5..] : name;

    /// vLLM's parser reads --max_model_len as --max-model-len: a token whose name (before "=" or ":") names a flag
    /// once its underscores are dashes is rewritten so; values, and tokens after "--", are kept.
    static string[] WithDashes(RootCommand root, string[] args)
    {
        var names = root.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).ToHashSet(StringComparer.Ordinal);
        var result = (string[])args.Clone();
        for (var i = 0; i < result.Length && result[i] != "--"; i++)
        {
            if (!result[i].StartsWith("--", StringComparison.Ordinal) || !result[i].Contains('_')) continue;
            var end = result[i].IndexOfAny(['=', ':']);
            var name = (end < 0 ? result[i] : result[i][..end]).Replace('_', '-');
            if (names.Contains(name)) result[i] = name + (end < 0 ? "" : result[i][end..]);
        }
        return result;
    }
}
