namespace Serving.Engine.Sampling;

/// The outcome of one text delta: the text that may be emitted now, and the stop string that ended the
/// sequence (null while it goes on).
public readonly record struct StopStringMatch(string Text, string? StopString);

/// Finds stop strings in a sequence's streamed text, also when one spans several token deltas, so that a
/// stop string never reaches the caller (unless include_stop_str_in_output).
/// Invariant: the held-back text is the longest tail of the text seen so far that is a proper prefix of some
/// stop string; everything before it was emitted and contains no stop string. A match therefore always ends
/// inside the newest delta, and the held text plus the new delta is all that must be searched.
/// Emitted and held text split the stream only where a stop string could start, which is never inside a
/// UTF-16 surrogate pair as long as the deltas and stop strings are well-formed.
public sealed class StopStringMatcher
{
    readonly string[] _stopStrings;
    readonly bool _includeStopString;
    string _held = "";

    public StopStringMatcher(IReadOnlyList<string> stopStrings, bool includeStopStringInOutput = false)
    {
        if (stopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("Stop strings must not be empty.", nameof(stopStrings));
        }
        _stopStrings = [.. stopStrings];
        _includeStopString = includeStopStringInOutput;
    }

    /// Set once a stop string matched; the sequence must end and no more text may be appended.
    public bool IsStopped { get; private set; }

    /// Text that is held back because it may be the start of a stop string.
    public string HeldText => _held;

    /// Takes the text the newest tokens add. On a match (the earliest in the text; among stop strings
    /// starting at the same place, the first listed) returns the text up to the stop string (or through it
    /// when included); text after it is dropped.
    public StopStringMatch Append(string textDelta)
    {
        if (IsStopped)
        {
            throw new InvalidOperationException("A stop string already ended this sequence.");
        }
        var pending = _held + textDelta;
        var (start, stop) = EarliestMatch(pending);
        if (stop is not null)
        {
            IsStopped = true;
            _held = "";
            return new StopStringMatch(pending[..(start + (_includeStopString ? stop.Length : 0))], stop);
        }
        var heldLength = LongestStopPrefixTail(pending);
        _held = pending[^heldLength..];
        return new StopStringMatch(pending[..^heldLength], null);
    }

    /// Releases the held-back text when the sequence ends for another reason (EOS, length, abort).
    public string Flush()
    {
        var held = _held;
        _held = "";
        return held;
    }

    (int Start, string? Stop) EarliestMatch(string text)
    {
        var (bestStart, bestStop) = (int.MaxValue, (string?)null);
        foreach (var stop in _stopStrings)
        {
            var start = text.IndexOf(stop, StringComparison.Ordinal);
            if (start >= 0 && start < bestStart)
            {
                (bestStart, bestStop) = (start, stop);
            }
        }
        return (bestStart, bestStop);
    }

    /// Length of the longest tail of text that some stop string starts with (shorter than that stop string,
    /// or it would have matched).
    int LongestStopPrefixTail(string text)
    {
        var longest = 0;
        foreach (var stop in _stopStrings)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
