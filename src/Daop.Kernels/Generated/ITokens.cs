namespace Daop.Kernels.Generated;

/// <summary>
/// A token count known at JIT time, for the shaped expert kernel's few-token path: each count is its own
/// instantiation, so per-token loops unroll and unused accumulators disappear.
/// </summary>
internal interface ITokens
{
    static abstract int Count { get; }
}

/// <summary>One token (decode).</summary>
internal struct OneToken : ITokens
{
    public static int Count => 1;
}

/// <summary>Two tokens.</summary>
internal struct TwoTokens : ITokens
{
    public static int Count => 2;
}

/// <summary>Three tokens.</summary>
internal struct ThreeTokens : ITokens
{
    public static int Count => 3;
}
