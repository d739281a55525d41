using System.Runtime.CompilerServices;

namespace Daop.Tests;

/// <summary>Process-wide settings the tests assume, applied before any test code runs.</summary>
static class TestDefaults
{
    /// <summary>
    /// Keeps bf16 batches on fp32 activations (<c>DAOP_AVX512BF16=0</c>) unless the variable is given: the golden tests
    /// compare with transformers' fp32 logits, and chunked-vs-one-shot prefill tests expect the same numerics at every
    /// batch size, while the AVX512-BF16 routing rounds x to bf16 from 17 tokens on. Avx512Bf16Tests run the routines
    /// themselves (emitted wherever the CPU has them) and the driver on their twin.
    /// </summary>
    [ModuleInitializer]
    internal static void Apply()
    {
        if (Environment.GetEnvironmentVariable("DAOP_AVX512BF16") is null) Environment.SetEnvironmentVariable("DAOP_AVX512BF16", "0");
    }
}
