using System.Globalization;
using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// Text forms of values exactly as Python writes them: str(), repr() and json.dumps(ensure_ascii=False),
/// because rendered prompts must match what transformers produces byte for byte.
internal static class PyFormat
{
    public static string Str(JinjaValue value) => value switch
    {
        UndefinedValue => "",
        StringValue s => s.Value,
        _ => Repr(value),
    };

    public static string Repr(JinjaValue value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value);
        return sb.ToString();
    }

    static void AppendRepr(StringBuilder sb, JinjaValue value)
    {
        switch (value)
        {
            case UndefinedValue: sb.Append("Undefined"); break; // only inside a container; str(Undefined) is ""
            case NoneValue: sb.Append("None"); break;
            case BoolValue b: sb.Append(b.Value ? "True" : "False"); break;
            case IntValue i: sb.Append(i.Value.ToString(CultureInfo.InvariantCulture)); break;
            case FloatValue f: sb.Append(Float(f.Value)); break;
            case StringValue s: AppendStringRepr(sb, s.Value); break;
            case ListValue l: AppendSequence(sb, l); break;
            case DictValue d: AppendDict(sb, d); break;
            case NamespaceValue n: sb.Append("<Namespace ").Append(Repr(n.Attributes)).Append('>'); break;
            case LoopValue loop: sb.Append(loop.ToString()); break;
            case CallableValue c: sb.Append("<function ").Append(c.Name).Append('>'); break;
        }
    }

    static void AppendSequence(StringBuilder sb, ListValue list)
    {
        sb.Append(list.IsTuple ? '(' : '[');
        for (var i = 0; i < list.Items.Count; i++)
        {
            if (i > 0) sb.Append(", ");
            AppendRepr(sb, list.Items[i]);
        }
        if (list.IsTuple && list.Items.Count == 1) sb.Append(',');
        sb.Append(list.IsTuple ? ')' : ']');
    }

    static void AppendDict(StringBuilder sb, DictValue dict)
    {
        sb.Append('{');
        var first = true;
        foreach (var (key, item) in dict.Entries)
        {
            if (!first) sb.Append(", ");
            first = false;
            AppendRepr(sb, key);
            sb.Append(": ");
            AppendRepr(sb, item);
        }
        sb.Append('}');
    }

    /// Python picks single quotes unless the text has a single quote and no double quote.
    static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var c in s)
        {
            if (c == quote || c == '\\') sb.Append('\\').Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        sb.Append(quote);
    }

    /// Python's repr(float): the shortest round-trip digits, positional for 1e-4 <= |x| < 1e16,
    /// otherwise scientific with a signed two-digit exponent ("1e-05", "1e+16"); always a '.0' when integral.
    public static string Float(double x)
    {
        if (double.IsNaN(x)) return "nan";
        if (double.IsInfinity(x)) return x > 0 ? "inf" : "-inf";
        if (x == 0) return double.IsNegative(x) ? "-0.0" : "0.0";
        var (negative, digits, exponent) = ShortestDigits(x);
        var sign = negative ? "-" : "";
        // value = 0.d1d2d3... * 10^exponent, i.e. decimal point after `exponent` digits.
        var pointPos = exponent;
        if (pointPos > -4 && pointPos <= 16)
        {
            if (pointPos <= 0) return sign + "0." + new string('0', -pointPos) + digits;
            if (pointPos >= digits.Length) return sign + digits + new string('0', pointPos - digits.Length) + ".0";
            return sign + digits[..pointPos] + "." + digits[pointPos..];
        }
        var mantissa = digits.Length == 1 ? digits : digits[..1] + "." + digits[1..];
        var e = pointPos - 1;
        return $"{sign}{mantissa}e{(e < 0 ? '-' : '+')}{Math.Abs(e):00}";
    }

    /// Shortest round-trip decimal digits of |x| (no leading/trailing zeros) and the position of the point.
    static (bool Negative, string Digits, int Exponent) ShortestDigits(double x)
    {
        // "R" gives the shortest round-trip form; parse it into digits and exponent.
        var shortest = Math.Abs(x).ToString("R", CultureInfo.InvariantCulture);
        var ePos = shortest.IndexOfAny(['E', 'e']);
        var mantissa = ePos < 0 ? shortest : shortest[..ePos];
        var exp10 = ePos < 0 ? 0 : int.Parse(shortest[(ePos + 1)..], CultureInfo.InvariantCulture);
        var dot = mantissa.IndexOf('.');
        var intPart = dot < 0 ? mantissa : mantissa[..dot];
        var fracPart = dot < 0 ? "" : mantissa[(dot + 1)..];
        var all = intPart + fracPart;
        var pointPos = intPart.Length + exp10;
        var trimmedLeading = all.TrimStart('0');
        pointPos -= all.Length - trimmedLeading.Length;
        return (x < 0, trimmedLeading.TrimEnd('0'), pointPos);
    }
}
