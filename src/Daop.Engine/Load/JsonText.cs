using System.Text.Json;

namespace Daop.Engine.Load;

/// <summary>
/// Checks that a parsed JSON document holds only strings .NET can represent. JSON allows a lone UTF-16 surrogate escape
/// such as "\ud800"; System.Text.Json parses it but throws <see cref="InvalidOperationException"/> when the string is read.
/// The loaders call <see cref="CheckStrings"/> once after parsing, so such a file fails with a
/// <see cref="ModelLoadException"/> naming the field instead of a crash deep inside a loader.
/// </summary>
static class JsonText
{
    /// <summary>The text without a leading UTF-8 byte order mark (JsonDocument.Parse of bytes rejects one).</summary>
    public static ReadOnlyMemory<byte> SkipBom(byte[] bytes) =>
        bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes.AsMemory(3) : bytes;

    /// <summary>
    /// Throws a <see cref="ModelLoadException"/> naming <paramref name="file"/> if the text is not valid UTF-8 or a string
    /// or key holds an unpaired surrogate escape.
    /// </summary>
    public static void CheckStrings(string file, ReadOnlySpan<byte> utf8, JsonElement root)
    {
        // System.Text.Json validates UTF-8 only when a string is read, so check the whole text once.
        if (!System.Text.Unicode.Utf8.IsValid(utf8))
            throw new ModelLoadException($"{file}: not valid UTF-8 text (first bad byte at offset {FirstInvalidByte(utf8)})");
        if (!MayHaveSurrogateEscape(utf8)) return;
        if (FindUnreadable(root, "") is { } path)
            throw new ModelLoadException($"{file}: {(path.Length == 0 ? "the top-level value" : path)} holds an unpaired UTF-16 surrogate escape " +
                "(\\uD800-\\uDFFF without its partner), which is not valid Unicode text");
    }

    static int FirstInvalidByte(ReadOnlySpan<byte> s)
    {
        int i = 0;
        while (i < s.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(s[i..], out _, out int n) != System.Buffers.OperationStatus.Done) return i;
            i += n;
        }
        return i;
    }

    // Only a backslash-u escape of a value in D800..DFFF can make a string unreadable.
    static bool MayHaveSurrogateEscape(ReadOnlySpan<byte> s)
    {
        for (int i = s.IndexOf((byte)'\\'); i >= 0 && i + 3 < s.Length; i = s[(i + 1)..].IndexOf((byte)'\\') is int j and >= 0 ? i + 1 + j : -1)
            if (s[i + 1] == 'u' && (s[i + 2] | 0x20) == 'd' && (s[i + 3] is >= (byte)'8' and <= (byte)'9' || (s[i + 3] | 0x20) is >= 'a' and <= 'f'))
                return true;
        return false;
    }

    static string? FindUnreadable(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                return Readable(() => e.GetString()) ? null : path;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    string? name = null;
                    if (!Readable(() => name = p.Name)) return $"a key of {(path.Length == 0 ? "the top-level object" : path)}";
                    if (FindUnreadable(p.Value, path.Length == 0 ? name! : $"{path}.{name}") is { } bad) return bad;
                }
                return null;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray())
                    if (FindUnreadable(item, $"{path}[{i++}]") is { } bad) return bad;
                return null;
            default:
                return null;
        }
    }

    static bool Readable(Action read)
    {
        try
        {
            read();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
