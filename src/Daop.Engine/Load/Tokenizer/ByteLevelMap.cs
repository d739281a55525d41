using System.Text;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// GPT-2's bytes_to_unicode table: every byte maps to a printable character so byte-level BPE
/// vocabularies never hold raw control bytes or spaces (space becomes 'Ġ', newline 'Ċ').
/// </summary>
internal static class ByteLevelMap
{
    /// <summary>Byte → character.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Character → byte, -1 for characters outside the table (indexed by char up to 0x143).</summary>
    private static readonly short[] CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x144];
        System.Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++)
            map[ByteToChar[b]] = (short)b;
        return map;
    }

    /// <summary>Maps text to its byte-level form (UTF-8 bytes, each shown as one character).</summary>
    public static string Encode(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++)
                dst[i] = ByteToChar[src[i]];
        });
    }

    /// <summary>
    /// Appends the bytes a token stands for. Like the Rust decoder, a token holding any character
    /// outside the table (e.g. an added token such as "&lt;think&gt;\n") contributes its raw UTF-8.
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        foreach (char c in token)
        {
            if (c >= CharToByte.Length || CharToByte[c] < 0)
            {
                output.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (char c in token)
            output.Add((byte)CharToByte[c]);
    }
}
