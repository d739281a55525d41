using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>
/// Whether this process may run AMX int8 tiles: the CPU reports AMX-TILE and AMX-INT8 (CPUID leaf 7), the OS grants
/// the tile data state (Linux ≥ 5.16 enables it per process on request: <c>arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)</c>), and the routines could be placed in executable memory. <c>DAOP_AMX=0</c> turns it off;
/// <c>DAOP_AMX=emulate</c> runs the AMX drivers on the tiles' scalar twins on any CPU (slow: to measure their accuracy
/// on a machine without AMX).
/// </summary>
internal static unsafe partial class AmxSupport
{
    /// <summary>The AMX drivers run (on the tiles, or on their twins with <c>DAOP_AMX=emulate</c>).</summary>
    public static bool Int8 { get; }

    /// <summary>The CPU's AMX tiles run them (the routines are compiled); false when emulated.</summary>
    public static bool Hardware { get; }

    /// <summary>
    /// The K-quants go through the tiles too (<c>DAOP_AMX_KQUANTS=1</c>): measured slower than their AVX-512 kernels on a
    /// Xeon host (2026-12-07: q4_K 768–882 vs 925–973 GFLOP/s at 16 tokens, q6_K 500–507 vs 955–1124): per 32-column
    /// block the mins add to the scaling in AVX-512, and Q6_K's 16-column scales double it, more than the tiles save.
    /// </summary>
    public static bool KQuants { get; } = Environment.GetEnvironmentVariable("DAOP_AMX_KQUANTS") == "1";

    /// <summary>AMX bf16 tiles are usable too (CPUID AMX-BF16); <c>DAOP_AMX_BF16=0</c> keeps bf16 weights on fp32 activations.</summary>
    public static bool Bf16 { get; }

    /// <summary>
    /// Batches from this size on take the tiles (<c>DAOP_AMX_MIN_TOKENS</c> overrides it). A Xeon host, Mixtral expert,
    /// 16 threads, GFLOP/s tiles vs AVX-512 (2026-12-07): 4 tokens bf16 367–396 vs 417–534, q8_0 346–372 vs 702–792;
    /// 16 tokens bf16 1309–1367 vs 917–1004, q8_0 1306–1437 vs 791–915, q4_0 1136–1245 vs 945–1191.
    /// </summary>
    public static int MinTokens { get; } = int.TryParse(Environment.GetEnvironmentVariable("DAOP_AMX_MIN_TOKENS"), out int m) && m > 0 ? m : 16;

    /// <summary>Why AMX is not used, for <c>daop bench kernels</c> and logs; null when it is.</summary>
    public static string? Reason { get; }

    static AmxSupport()
    {
        bool emulated = Environment.GetEnvironmentVariable("DAOP_AMX") == "emulate";
        Reason = emulated ? null : Probe();
        Hardware = Reason is null && !emulated;
        Int8 = Reason is null;
        Bf16 = Int8 && (emulated || (X86Base.CpuId(7, 0).Edx & (1 << 22)) != 0) && Environment.GetEnvironmentVariable("DAOP_AMX_BF16") != "0";
    }

    static string? Probe()
    {
        if (Environment.GetEnvironmentVariable("DAOP_AMX") == "0") return "DAOP_AMX=0";
        if (!OperatingSystem.IsLinux() || !X86Base.X64.IsSupported) return "not Linux x86-64";
        if (!Avx512F.IsSupported) return "no AVX-512";
        var (_, _, _, edx) = X86Base.CpuId(7, 0);
        const int AmxTile = 1 << 24, AmxInt8 = 1 << 25;
        if ((edx & (AmxTile | AmxInt8)) != (AmxTile | AmxInt8)) return "the CPU has no AMX-INT8";
        const int ArchReqXcompPerm = 0x1023, XFeatureXtileData = 18, SysArchPrctl = 158;
        if (Syscall(SysArchPrctl, ArchReqXcompPerm, XFeatureXtileData) != 0)
            return $"the OS refused the AMX tile state (arch_prctl errno {Marshal.GetLastPInvokeError()})";
        return null;
    }

    /// <summary>
    /// <paramref name="code"/> copied into a fresh page made read+execute (never writable and executable at once).
    /// The memory lives as long as the process.
    /// </summary>
    public static byte* MapExecutable(ReadOnlySpan<byte> code)
    {
        const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
        nuint size = ((nuint)code.Length + 4095) & ~(nuint)4095;
        byte* p = (byte*)Mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == (byte*)-1) throw new InvalidOperationException($"mmap of {size} bytes for the AMX routines failed (errno {Marshal.GetLastPInvokeError()})");
        code.CopyTo(new Span<byte>(p, code.Length));
        if (Mprotect(p, size, ProtRead | ProtExec) != 0)
            throw new InvalidOperationException($"mprotect of the AMX routines failed (errno {Marshal.GetLastPInvokeError()})");
        return p;
    }

    // syscall(2) is variadic; on x86-64 integer arguments pass in the same registers either way.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint Syscall(nint number, nint a1, nint a2);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(void* addr, nuint length, int prot);
}
