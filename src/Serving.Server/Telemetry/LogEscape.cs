using System.Globalization;
using System.Text;

namespace Serving.Server.Telemetry;

/// Caller text as it may appear in a log line: control characters (newlines, carriage returns, ANSI escapes)
/// written as escapes, as vLLM logs prompts with %r, so that no request can forge or garble log lines.
internal static class LogEscape
{
    public static string Text(string text)
    {
        if (!text.Any(char.IsControl)) return text;
        var escaped = new StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            escaped.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => string.Create(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"),
                _ => c.ToString(),
            });
        }
        return escaped.ToString();
    }
}
