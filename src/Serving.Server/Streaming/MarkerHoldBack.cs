namespace Serving.Server.Streaming;

/// What a streamed text holds back at its end: the characters that may be the beginning of a marker (a tag that opens
/// or closes a tool call, a thinking part, a harmony message), until the next delta says whether the marker comes.
internal static class MarkerHoldBack
{
    /// Length of the longest tail of text that is a proper prefix of one of the markers (0: none).
    public static int PartialMarkerLength(string text, params IEnumerable<string> markers)
    {
        var longest = 0;
        foreach (var marker in markers)
            for (var length = Math.Min(marker.Length - 1, text.Length); length > longest; length--)
                if (text.AsSpan(text.Length - length).SequenceEqual(marker.AsSpan(0, length))) longest = length;
        return longest;
    }
}
