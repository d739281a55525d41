namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// How long text may grow inside the tokenizer pipeline. Components from the file can lengthen it (a Replace with a
/// long content or a pattern matching the empty string, NFKD's up to 18-fold decompositions, ByteLevel's 3-fold bytes)
/// and a Sequence chains them, multiplying the growth. Each step therefore gets the longest result allowed for the
/// caller's input and fails beyond it, instead of building gigabytes from a short prompt.
/// </summary>
internal static class TextGrowth
{
    /// <summary>
    /// Allowed growth factor, above every real pipeline: NFKD's worst case is U+FDFA (18 code points, 33 UTF-8 bytes,
    /// so 33 characters after ByteLevel).
    /// </summary>
    public const int Factor = 64;

    /// <summary>Allowed absolute growth, for short inputs and constant additions such as Prepend.</summary>
    public const int Slack = 4096;

    /// <summary>The longest text the pipeline may make from <paramref name="inputLength"/> characters.</summary>
    public static int Limit(long inputLength) => (int)Math.Min(int.MaxValue / 2, Factor * inputLength + Slack);

    /// <summary>The error for a component that went past <paramref name="limit"/>.</summary>
    public static ModelLoadException TooLong(string what, int limit) => new(
        $"{what} makes the text longer than {limit} characters ({Factor} times the input plus {Slack}); this tokenizer cannot be used");
}
