namespace Serving.Engine.Templates;

/// A chat template could not be parsed, asked to fail through raise_exception, or broke a sandbox limit.
/// Syntax and runtime errors carry the template line; a template's own raise_exception message is kept
/// verbatim (servers show it to the client as the reason the conversation was refused).
public sealed class TemplateException : Exception
{
    TemplateException(string message, int? line, bool raisedByTemplate)
        : base(line is int l ? $"{message} (template line {l})" : message)
    {
        Line = line;
        RaisedByTemplate = raisedByTemplate;
    }

    /// 1-based line in the template source, where known.
    public int? Line { get; }

    /// True when the template itself called raise_exception(msg); Message is then exactly msg.
    public bool RaisedByTemplate { get; }

    internal static TemplateException Syntax(string message, int line) => new(message, line, false);

    internal static TemplateException Runtime(string message, int? line = null) => new(message, line, false);

    internal static TemplateException Raised(string message) => new(message, null, true);
}
