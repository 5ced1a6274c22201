using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace Serving.Engine.Tokenization;

/// UTF-8 helpers for the decoders that assemble characters from byte tokens ("<0xE4>").
internal static class Utf8Text
{
    /// "<0xAB>" → 0xAB; the spelling SentencePiece and byte_fallback BPE give the 256 byte tokens.
    public static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    public static bool IsValid(List<byte> bytes) => Utf8.IsValid(AsSpan(bytes));

    /// Decodes whole characters from the front of bytes the way SentencePiece does: a byte that cannot start a
    /// valid character becomes one U+FFFD. A trailing incomplete character stays in bytes unless final is set,
    /// in which case each of its bytes becomes U+FFFD too.
    public static void DecodeEachInvalidByte(List<byte> bytes, bool final, StringBuilder output)
    {
        var span = AsSpan(bytes);
        var offset = 0;
        while (offset < span.Length)
        {
            var status = Rune.DecodeFromUtf8(span[offset..], out var rune, out var consumed);
            if (status == OperationStatus.NeedMoreData && !final) break;
            if (status == OperationStatus.Done)
            {
                output.Append(rune.ToString());
                offset += consumed;
            }
            else
            {
                output.Append('\uFFFD');
                offset += 1;
            }
        }
        bytes.RemoveRange(0, offset);
    }

    static ReadOnlySpan<byte> AsSpan(List<byte> bytes) =>
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
}
