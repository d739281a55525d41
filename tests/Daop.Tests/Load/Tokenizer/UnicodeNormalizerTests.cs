using System.Globalization;
using System.Text;
using Daop.Engine.Load.Tokenizer.Unicode;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>
/// The managed NFC/NFD/NFKC/NFKD against expectations printed by Python's unicodedata
/// (string.Normalize is a no-op under InvariantGlobalization, so it cannot be the oracle).
/// </summary>
public class UnicodeNormalizerTests
{
    // input, NFC, NFD, NFKC, NFKD as hex code points.
    public static TheoryData<string, string, string, string, string> Cases => new()
    {
        { "65 301", "E9", "65 301", "E9", "65 301" },
        { "212B", "C5", "41 30A", "C5", "41 30A" },
        { "41 30A 301", "1FA", "41 30A 301", "1FA", "41 30A 301" },
        { "61 323 302", "1EAD", "61 323 302", "1EAD", "61 323 302" },
        { "61 302 323", "1EAD", "61 323 302", "1EAD", "61 323 302" },
        { "1100 1161 11A8", "AC01", "1100 1161 11A8", "AC01", "1100 1161 11A8" },
        { "D55C AD6D C5B4", "D55C AD6D C5B4", "1112 1161 11AB 1100 116E 11A8 110B 1165", "D55C AD6D C5B4", "1112 1161 11AB 1100 116E 11A8 110B 1165" },
        { "FB01", "FB01", "FB01", "66 69", "66 69" },
        { "2460", "2460", "2460", "31", "31" },
        { "FF76 FF9E", "FF76 FF9E", "FF76 FF9E", "30AC", "30AB 3099" },
        { "1D400", "1D400", "1D400", "41", "41" },
        { "130", "130", "49 307", "130", "49 307" },
        { "BD A0 78", "BD A0 78", "BD A0 78", "31 2044 32 20 78", "31 2044 32 20 78" },
        { "344", "308 301", "308 301", "308 301", "308 301" },
        { "F73", "F71 F72", "F71 F72", "F71 F72", "F71 F72" },
        { "1E9B 323", "1E9B 323", "17F 323 307", "1E69", "73 323 307" },
        { "958", "915 93C", "915 93C", "915 93C", "915 93C" },
        { "1C5", "1C5", "1C5", "44 17E", "44 7A 30C" },
        { "1F642 65 301", "1F642 E9", "1F642 65 301", "1F642 E9", "1F642 65 301" },
        { "C7 301", "1E08", "43 327 301", "1E08", "43 327 301" },
    };

    private static string FromHex(string hex)
    {
        var sb = new StringBuilder();
        foreach (var part in hex.Split(' '))
            sb.Append(char.ConvertFromUtf32(int.Parse(part, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        return sb.ToString();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPythonUnicodedata(string input, string nfc, string nfd, string nfkc, string nfkd)
    {
        string s = FromHex(input);
        Assert.Equal(FromHex(nfc), UnicodeNormalizer.Normalize(s, compose: true, compat: false));
        Assert.Equal(FromHex(nfd), UnicodeNormalizer.Normalize(s, compose: false, compat: false));
        Assert.Equal(FromHex(nfkc), UnicodeNormalizer.Normalize(s, compose: true, compat: true));
        Assert.Equal(FromHex(nfkd), UnicodeNormalizer.Normalize(s, compose: false, compat: true));
    }

    [Fact]
    public void AsciiIsReturnedUnchanged()
    {
        const string text = "plain ascii text\n";
        Assert.Same(text, UnicodeNormalizer.Normalize(text, compose: true, compat: true));
    }
}
