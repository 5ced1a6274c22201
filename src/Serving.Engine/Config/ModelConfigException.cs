namespace Serving.Engine.Config;

/// config.json or generation_config.json holds something we cannot serve faithfully; the message names the field.
public sealed class ModelConfigException(string message, Exception? inner = null) : ModelLoadException(message, inner)
{
    public static ModelConfigException Unsupported(string file, string field, object? value, string supported) =>
        new($"{file}: unsupported {field} = {value ?? "null"} (field '{field}'; supported: {supported})");
}
