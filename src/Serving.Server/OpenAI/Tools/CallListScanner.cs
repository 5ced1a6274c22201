using System.Text;

namespace Serving.Server.OpenAI.Tools;

/// Reads, character by character, the JSON that tool_choice "required" constrains the model to write:
///   [ {"name": "<function>", "parameters": <arguments>} , ... ]
/// telling when a call's name is complete and which characters are its arguments. The grammar guarantees
/// the shape (name before parameters, no other keys), so this only tracks depth, strings and keys.
internal sealed class CallListScanner
{
    public enum Event { None, NameEnded, ArgumentCharacter }

    const int CallDepth = 2; // inside [ { ... } ]
    readonly StringBuilder _token = new();
    int _depth;
    bool _inString;
    bool _escaped;
    string? _key;           // the key whose value comes next at CallDepth
    bool _readingKey;
    bool _readingName;
    bool _expectingValue;   // after ':' at CallDepth, before the value's first character
    bool _inArguments;
    bool _scalarArguments;  // arguments that are not an object or a list end at ',' '}' or a blank

    /// Index of the call being read (0 for the first).
    public int CallIndex { get; private set; } = -1;

    /// The name of the call being read, once complete.
    public string Name { get; private set; } = "";

    public Event Read(char c)
    {
        if (_inArguments) return ReadArgument(c);
        if (_inString) return ReadString(c);
        if (_depth == CallDepth && _expectingValue && _key == "parameters" && c is not (' ' or '\n' or '\t' or '\r'))
        {
            (_inArguments, _expectingValue, _scalarArguments) = (true, false, c is not ('{' or '['));
            return ReadArgument(c);
        }
        switch (c)
        {
            case '"':
                (_inString, _readingName, _readingKey) = (true, _depth == CallDepth && _expectingValue && _key == "name", _depth == CallDepth && !_expectingValue);
                _expectingValue = false;
                _token.Clear();
                break;
            case ':' when _depth == CallDepth:
                _expectingValue = true;
                break;
            case '{' or '[':
                _depth++;
                if (_depth == CallDepth && c == '{') CallIndex++;
                break;
            case '}' or ']':
                _depth--;
                break;
        }
        return Event.None;
    }

    Event ReadArgument(char c)
    {
        if (_inString)
        {
            if (_escaped) _escaped = false;
            else if (c == '\\') _escaped = true;
            else if (c == '"') _inString = false;
            return Event.ArgumentCharacter;
        }
        if (_scalarArguments && c is ',' or '}' or ' ' or '\n' or '\t' or '\r')
        {
            (_inArguments, _key) = (false, null);
            return Read(c);
        }
        switch (c)
        {
            case '"':
                _inString = true;
                break;
            case '{' or '[':
                _depth++;
                break;
            case '}' or ']':
                _depth--;
                if (_depth == CallDepth) (_inArguments, _key) = (false, null);
                break;
        }
        return Event.ArgumentCharacter;
    }

    Event ReadString(char c)
    {
        if (_escaped)
            _escaped = false;
        else if (c == '\\')
            _escaped = true;
        else if (c == '"')
        {
            _inString = false;
            if (_readingKey) (_key, _readingKey) = (_token.ToString(), false);
            if (!_readingName) return Event.None;
            (Name, _readingName, _key) = (_token.ToString(), false, null);
            return Event.NameEnded;
        }
        _token.Append(c);
        return Event.None;
    }
}
