using System.Text.RegularExpressions;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>Split behaviours and code-point (not UTF-16) regex semantics, as in the Rust library.</summary>
public class RegexSplitterTests
{
    private const string QwenPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static string[] Split(string text, string pattern, SplitBehavior behavior, bool invert = false)
        => RegexSplitter.Split(text, new Regex(pattern, RegexOptions.CultureInvariant), behavior, invert)
            .Select(r => text[r.Start..r.End]).ToArray();

    [Fact]
    public void AstralLetterStaysInsideAWord()
    {
        // U+20000 is a CJK letter (Lo): Rust's \p{L}+ matches "a𠀀b" as one run.
        Assert.Equal(["a\U00020000b", " c"], Split("a\U00020000b c", QwenPattern, SplitBehavior.Isolated));
    }

    [Fact]
    public void AstralDigitIsOneNumber()
    {
        // U+1D7D8 MATHEMATICAL DOUBLE-STRUCK DIGIT ZERO is Nd: Qwen isolates single numbers.
        Assert.Equal(["x", "\U0001D7D8", "1"], Split("x\U0001D7D81", QwenPattern, SplitBehavior.Isolated));
    }

    [Fact]
    public void EmojiRunIsOnePunctuationLikePiece()
    {
        Assert.Equal(["hi", " \U0001F642\U0001F680"], Split("hi \U0001F642\U0001F680", QwenPattern, SplitBehavior.Isolated));
    }

    [Theory]
    [InlineData("Removed", new[] { "a", "b", "c" })]
    [InlineData("Isolated", new[] { "a", "-", "b", "-", "-", "c" })]
    [InlineData("MergedWithPrevious", new[] { "a-", "b-", "-", "c" })]
    [InlineData("MergedWithNext", new[] { "a", "-b", "-", "-c" })]
    [InlineData("Contiguous", new[] { "a", "--", "b", "--", "c" })]
    public void BehavioursMatchRustSemantics(string behaviorName, string[] expected)
    {
        var behavior = Enum.Parse<SplitBehavior>(behaviorName);
        // Contiguous here sees "-" matches; "a-b--c" gives a | - | b | - | - | c before merging.
        string text = behavior == SplitBehavior.Contiguous ? "a--b--c" : "a-b--c";
        Assert.Equal(expected, Split(text, "-", behavior));
    }

    [Fact]
    public void InvertKeepsMatchesAsContent()
    {
        Assert.Equal(["ab", "cd"], Split("ab  cd", @"\w+", SplitBehavior.Removed, invert: true));
    }
}
