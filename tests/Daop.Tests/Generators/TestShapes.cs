using Daop.Kernels;
using Daop.Kernels.Generated;

namespace Daop.Tests.Generators;

// Shapes the repository's configs do not name, declared here the way the generator would, so the specialised
// kernel can be checked on awkward dimensions: column tails (not a multiple of the vector step) and row counts
// that are not a multiple of 4.

/// <summary>80 × 136 bf16: both row lengths end in a partial AVX-512 step (80 % 32, 136 % 32).</summary>
internal readonly struct Odd80x136Bf16 : IExpertShape
{
    public static int Hidden => 80;
    public static int Inter => 136;
    public static DType Type => DType.BF16;
}

/// <summary>33 × 17 f16: tails everywhere and 17 gate/up rows, 33 down rows (not multiples of 4).</summary>
internal readonly struct Odd33x17F16 : IExpertShape
{
    public static int Hidden => 33;
    public static int Inter => 17;
    public static DType Type => DType.F16;
}

/// <summary>64 × 128 f32: exact steps, the non-interleaved (no activation permute) format.</summary>
internal readonly struct Even64x128F32 : IExpertShape
{
    public static int Hidden => 64;
    public static int Inter => 128;
    public static DType Type => DType.F32;
}

/// <summary>The embedded model's expert shape, for driving the narrow-width kernels directly.</summary>
internal readonly struct Tiny256x256Bf16 : IExpertShape
{
    public static int Hidden => 256;
    public static int Inter => 256;
    public static DType Type => DType.BF16;
}
