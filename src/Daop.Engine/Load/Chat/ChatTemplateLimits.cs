namespace Daop.Engine.Load.Chat;

/// <summary>
/// Bounds on what a chat template may cost to parse and render. A template comes with the model folder, so it is
/// untrusted code: without bounds a recursive macro overflows the stack (which .NET cannot catch: the process dies),
/// and <c>range(10**9)</c> or <c>'a' * 10**10</c> exhaust memory. The defaults are far above what real Hugging Face
/// templates need (they render in milliseconds, nest a dozen levels and loop once per message); callers may tighten them.
/// Breaking a limit raises <see cref="ChatTemplateException"/> naming the template line.
/// </summary>
public sealed record ChatTemplateLimits
{
    /// <summary>The defaults.</summary>
    public static ChatTemplateLimits Default { get; } = new();

    /// <summary>Characters of template source (real templates are a few KiB).</summary>
    public int MaxTemplateLength { get; init; } = 1 << 20;

    /// <summary>
    /// Nesting of blocks, brackets and chained operators when parsing, and of statements, expressions and values
    /// (lists in lists, what tojson and printing walk) when rendering.
    /// </summary>
    public int MaxNestingDepth { get; init; } = 256;

    /// <summary>Macro calls in progress at once, so a recursive macro ends with an error, not a stack overflow.</summary>
    public int MaxCallDepth { get; init; } = 64;

    /// <summary>Characters of the rendered text, of text captured by a macro or set block, and of any string a template builds.</summary>
    public int MaxOutputLength { get; init; } = 8 << 20;

    /// <summary>Items of any list a template builds (range, *, +, split, ...).</summary>
    public int MaxListLength { get; init; } = 1 << 20;

    /// <summary>Loop iterations in one render, all loops together.</summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Bytes one render may allocate in total (measured with <see cref="GC.GetAllocatedBytesForCurrentThread"/>).</summary>
    public long MaxAllocatedBytes { get; init; } = 512L << 20;

    /// <summary>Wall-clock time of one render.</summary>
    public TimeSpan MaxRenderTime { get; init; } = TimeSpan.FromSeconds(5);

    /// <exception cref="ArgumentOutOfRangeException">A limit is not positive.</exception>
    internal ChatTemplateLimits Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTemplateLength, 1, nameof(MaxTemplateLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxNestingDepth, 1, nameof(MaxNestingDepth));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxCallDepth, 1, nameof(MaxCallDepth));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxOutputLength, 1, nameof(MaxOutputLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxListLength, 1, nameof(MaxListLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxLoopIterations, 1, nameof(MaxLoopIterations));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAllocatedBytes, 1, nameof(MaxAllocatedBytes));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(MaxRenderTime, TimeSpan.Zero, nameof(MaxRenderTime));
        return this;
    }
}
