using System.Globalization;

namespace Daop.Cli;

/// <summary>
/// The one parser for sizes on the command line (<c>--vram-budget</c>, <c>--max-body-bytes</c>, <c>--bandwidth-bytes</c>):
/// plain bytes, or a number with a decimal (K, M, G, T = 1000^n) or binary (KiB, MiB, GiB, TiB = 1024^n) unit.
/// </summary>
static class ByteSize
{
    /// <summary>What a size looks like, for error messages.</summary>
    public const string Forms = "bytes, or a number with K/M/G/T (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024), e.g. 8GiB";

    /// <summary>
    /// Bytes from "81920", "80G", "80GB", "80GiB", "1.5T", "20 MB" (units case-insensitive; "_" may group digits).
    /// False for anything else: no number, an unknown unit, a negative size, a fraction of a byte, more than
    /// <see cref="long.MaxValue"/> bytes.
    /// </summary>
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        string s = text.Trim().Replace("_", "", StringComparison.Ordinal);
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        long scale = s[i..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "K" or "KB" => 1000L, "M" or "MB" => 1000_000L, "G" or "GB" => 1000_000_000L, "T" or "TB" => 1000_000_000_000L,
            "KI" or "KIB" => 1L << 10, "MI" or "MIB" => 1L << 20, "GI" or "GIB" => 1L << 30, "TI" or "TIB" => 1L << 40,
            _ => 0,
        };
        if (scale == 0 || i == 0) return false;
        if (!decimal.TryParse(s.AsSpan(0, i), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal n) || n > long.MaxValue) return false;
        decimal total = n * scale; // decimal: exact for every value below long.MaxValue, so "1.5GiB" is not rounded
        if (total > long.MaxValue || total != decimal.Truncate(total)) return false;
        bytes = (long)total;
        return true;
    }

    /// <summary>A short human form: "24 GiB", "1.5 MiB", "512 B".</summary>
    public static string Format(long b) => b switch
    {
        >= 1L << 40 => string.Create(CultureInfo.InvariantCulture, $"{b / (double)(1L << 40):0.##} TiB"),
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{b / (double)(1L << 30):0.##} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{b / (double)(1L << 20):0.##} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{b / 1024.0:0.##} KiB"),
        _ => $"{b} B",
    };
}
