using Daop.Cli;

namespace Daop.Tests.Cli;

/// <summary>The one size parser of every size option: plain bytes, decimal and binary units, and what it refuses.</summary>
public class ByteSizeTests
{
    [Theory]
    [InlineData("81920", 81920L)]
    [InlineData("0", 0L)]
    [InlineData("512B", 512L)]
    [InlineData("20MB", 20_000_000L)]
    [InlineData("20 M", 20_000_000L)]
    [InlineData("80G", 80_000_000_000L)]
    [InlineData("1.5T", 1_500_000_000_000L)]
    [InlineData("8GiB", 8L << 30)]
    [InlineData("8gib", 8L << 30)]
    [InlineData("1.5GiB", 3L << 29)]
    [InlineData("24Gi", 24L << 30)]
    [InlineData("4KiB", 4096L)]
    [InlineData("2TiB", 2L << 40)]
    [InlineData("1_048_576", 1L << 20)]
    public void ParsesBytesAndUnits(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out long b), text);
        Assert.Equal(bytes, b);
    }

    [Theory]
    [InlineData("")]
    [InlineData("GiB")]
    [InlineData("-1")]
    [InlineData("-8GiB")]
    [InlineData("8XB")]
    [InlineData("8 GiBs")]
    [InlineData("1.5")]          // a fraction of a byte
    [InlineData("0.1B")]
    [InlineData("1.2.3G")]
    [InlineData("9223372036854775808")] // long.MaxValue + 1
    [InlineData("9000000TiB")]
    [InlineData("99999999999999999999999999999T")]
    public void RefusesNonSizes(string text) => Assert.False(ByteSize.TryParse(text, out _), text);
}
