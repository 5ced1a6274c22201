using System.Text;

namespace Serving.Engine.Tokenization;

/// GPT-2's reversible byte ↔ character map used by byte-level BPE: printable Latin-1 bytes stand for
/// themselves, the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) take the characters U+0100.. in order,
/// so every UTF-8 byte of the input becomes one visible character of the vocabulary (space → 'Ġ').
public static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildByteToChar();
    static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    /// The character that stands for one byte.
    public static char Of(byte b) => ByteToChar[b];

    /// The byte-level spelling of text: one character per UTF-8 byte.
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// The bytes a vocabulary token stands for. A token with a character outside the alphabet (an added token
    /// such as "<|im_start|>" written with spaces) is taken as its own UTF-8 text, as the reference does.
    public static byte[] Decode(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out bytes[i])) return Encoding.UTF8.GetBytes(token);
        }
        return bytes;
    }

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }
}
