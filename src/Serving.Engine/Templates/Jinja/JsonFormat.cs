using System.Globalization;
using System.Text;

namespace Serving.Engine.Templates.Jinja;

/// json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...), the tojson filter transformers
/// installs (ensure_ascii False unless a template asks). Python defaults: separators (", ", ": ") without indent,
/// (",", ": ") with one; with ensure_ascii every character past '~' as a \u escape of four hex digits (a UTF-16 unit each, as Python's).
internal sealed class JsonFormat
{
    readonly string? _indent;
    readonly string _itemSeparator;
    readonly string _keySeparator;
    readonly bool _sortKeys;
    readonly bool _ensureAscii;
    readonly StringBuilder _sb = new();

    JsonFormat(string? indent, string? itemSeparator, string? keySeparator, bool sortKeys, bool ensureAscii)
    {
        _ensureAscii = ensureAscii;
        _indent = indent;
        _itemSeparator = itemSeparator ?? (indent is null ? ", " : ",");
        _keySeparator = keySeparator ?? ": ";
        _sortKeys = sortKeys;
    }

    public static string Dumps(JinjaValue value, string? indent = null, string? itemSeparator = null,
        string? keySeparator = null, bool sortKeys = false, bool ensureAscii = false)
    {
        var format = new JsonFormat(indent, itemSeparator, keySeparator, sortKeys, ensureAscii);
        format.Write(value, 0);
        return format._sb.ToString();
    }

    void Write(JinjaValue value, int depth)
    {
        switch (value)
        {
            case NoneValue: _sb.Append("null"); break;
            case BoolValue b: _sb.Append(b.Value ? "true" : "false"); break;
            case IntValue i: _sb.Append(i.Value.ToString(CultureInfo.InvariantCulture)); break;
            case FloatValue f: _sb.Append(FloatText(f.Value)); break;
            case StringValue s: WriteString(s.Value); break;
            case ListValue l: WriteContainer('[', ']', l.Items.Count, l.Items.Select(v => (Key: (string?)null, Value: v)), depth); break;
            case DictValue d: WriteContainer('{', '}', d.Count, DictEntries(d), depth); break;
            default: throw new JinjaRuntimeError($"Object of type {value.TypeName} is not JSON serializable");
        }
    }

    IEnumerable<(string? Key, JinjaValue Value)> DictEntries(DictValue dict)
    {
        var entries = _sortKeys ? dict.Entries.OrderBy(e => e.Key, Comparisons.PythonOrder) : dict.Entries;
        return entries.Select(e => ((string?)KeyText(e.Key), e.Value));
    }

    // json.dumps writes a key that is not a string as its JSON text: 512 -> "512", True -> "true", None -> "null"
    static string KeyText(JinjaValue key) => key switch
    {
        StringValue s => s.Value,
        BoolValue b => b.Value ? "true" : "false",
        IntValue i => i.Value.ToString(CultureInfo.InvariantCulture),
        FloatValue f => FloatText(f.Value),
        NoneValue => "null",
        _ => throw new JinjaRuntimeError($"keys must be str, int, float, bool or None, not {key.TypeName}"),
    };

    void WriteContainer(char open, char close, int count, IEnumerable<(string? Key, JinjaValue Value)> items, int depth)
    {
        _sb.Append(open);
        if (count == 0)
        {
            _sb.Append(close);
            return;
        }
        var first = true;
        foreach (var (key, item) in items)
        {
            if (!first) _sb.Append(_itemSeparator);
            first = false;
            NewLine(depth + 1);
            if (key is not null)
            {
                WriteString(key);
                _sb.Append(_keySeparator);
            }
            Write(item, depth + 1);
        }
        NewLine(depth);
        _sb.Append(close);
    }

    void NewLine(int depth)
    {
        if (_indent is null) return;
        _sb.Append('\n');
        for (var i = 0; i < depth; i++) _sb.Append(_indent);
    }

    void WriteString(string s)
    {
        _sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': _sb.Append("\\\""); break;
                case '\\': _sb.Append("\\\\"); break;
                case '\n': _sb.Append("\\n"); break;
                case '\r': _sb.Append("\\r"); break;
                case '\t': _sb.Append("\\t"); break;
                case '\b': _sb.Append("\\b"); break;
                case '\f': _sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (_ensureAscii && c > '~')) _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else _sb.Append(c);
                    break;
            }
        }
        _sb.Append('"');
    }

    static string FloatText(double x) => x switch
    {
        double.NaN => "NaN",
        double.PositiveInfinity => "Infinity",
        double.NegativeInfinity => "-Infinity",
        _ => PyFormat.Float(x),
    };
}
