using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>What one call of a <see cref="DpBf16Kernels"/> routine reads (the machine code reads these offsets).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct DpBf16Args
{
    /// <summary>Row 0's first pair of bf16 weights; the rows lie <see cref="WStride"/> bytes apart, read where they are.</summary>
    public byte* W;                // 0
    public nint WStride;           // 8
    /// <summary>Token tile 0's first pair in the pair layout: [pairs][16 tokens][2] bf16 (64 bytes a pair).</summary>
    public byte* X;                // 16
    /// <summary>Bytes from token tile 0 to token tile 1.</summary>
    public nint XTileStep;         // 24
    /// <summary>fp32 [tiles][rows][16 tokens], added to (the caller zeroes it before the first call).</summary>
    public float* C;               // 32
    /// <summary>Groups of <see cref="DpBf16Kernels.GroupPairs"/> pairs to run (≥ 1).</summary>
    public nint Groups;            // 40
}

/// <summary>
/// The AVX512-BF16 microkernels: for <c>rows</c> weight rows (1–24) and <c>tiles</c> token tiles of 16 tokens (1 or 2),
/// C[n][r][t] += Σ_pairs <c>vdpbf16ps</c>(x pair of token t, weight pair of row r), accumulators in zmm registers. The
/// x pairs of a tile are one zmm per pair; each weight pair is broadcast (<c>vpbroadcastd</c>) from where the row lies
/// (no repacking) into a register that feeds the tile's product, or both tiles' (up to 24 rows of one tile, 12 of two:
/// 24 accumulators hide the instruction's latency). With one tile every product needs its own weight load (the
/// broadcast as <c>vdpbf16ps</c>' memory operand, <c>{1to16}</c>, measured no faster on AMD Zen 5), so two tiles, one
/// load for two products, run about 2.5x faster per product: see <see cref="Avx512Bf16Gemm.MinTokens"/>. .NET 10 has no AVX512-BF16 intrinsics (no Avx512Bf16 class, and the CPUs with
/// it report no Avx10v1), so the routines are machine code from <see cref="X64Emitter"/>, written once per process;
/// <see cref="Emulate"/> is their scalar twin.
/// </summary>
/// <remarks>
/// Registers: zmm0–23 the accumulators (tile n, row r at n·rows + r), zmm30/31 the x pairs of tiles 0/1, zmm29 the
/// broadcast weight pair; rsi x, r11 the x tile step, rdx the weight stride s and rcx 3s; rows in groups of five from
/// the bases rax, r9, r10, rbx, r11 (row 5g + j at base_g + {0, s, 2s, 3s, 4s}); r8 the groups left. Each loop runs
/// four pairs (displacements 0, 4, 8, 12) then moves x by 256 bytes and every base by 16.
/// </remarks>
internal static unsafe class DpBf16Kernels
{
    /// <summary>Pairs of columns per loop of the routines: whole groups only, so the weights' columns must be a multiple of 8.</summary>
    public const int GroupPairs = 4;

    /// <summary>Most weight rows per call with one token tile, and with two.</summary>
    public const int MaxRows1 = 24, MaxRows2 = 12;

    /// <summary>
    /// The drivers route bf16 batches here (to the machine code, or to the twin with <c>DAOP_AVX512BF16=emulate</c>): the
    /// CPU reports AVX512-BF16 (CPUID leaf 7 subleaf 1, EAX bit 5) and AVX-512F, on Linux x86-64;
    /// <c>DAOP_AVX512BF16=0</c> turns the routing off (the routines are still written where the CPU has the instructions,
    /// so tests can run them).
    /// </summary>
    public static bool Enabled { get; }

    /// <summary>Why the routines are not used, for <c>daop bench kernels</c> and logs; null when they are.</summary>
    public static string? Reason { get; }

    static readonly byte* s_code;
    static readonly int[] s_entries = new int[MaxRows1 + MaxRows2 + 2];

    static DpBf16Kernels()
    {
        string? env = Environment.GetEnvironmentVariable("DAOP_AVX512BF16");
        bool emulated = env == "emulate";
        string? hardware = emulated ? "DAOP_AVX512BF16=emulate" : Probe();
        Reason = env == "0" ? "DAOP_AVX512BF16=0" : emulated ? null : hardware;
        Enabled = Reason is null;
        if (hardware != null) return;
        var e = new X64Emitter();
        for (int tiles = 1; tiles <= 2; tiles++)
            for (int rows = 1; rows <= (tiles == 1 ? MaxRows1 : MaxRows2); rows++)
            {
                s_entries[Entry(rows, tiles)] = e.Position;
                Emit(e, rows, tiles);
            }
        s_code = AmxSupport.MapExecutable(e.ToArray());
    }

    static string? Probe()
    {
        if (!OperatingSystem.IsLinux() || !X86Base.X64.IsSupported) return "not Linux x86-64";
        if (!Avx512F.IsSupported) return "no AVX-512";
        const int Avx512Bf16 = 1 << 5;
        return (X86Base.CpuId(7, 1).Eax & Avx512Bf16) == 0 ? "the CPU has no AVX512-BF16" : null;
    }

    static int Entry(int rows, int tiles) => tiles == 1 ? rows : MaxRows1 + 1 + rows;

    /// <summary>Whether <see cref="Run"/> executes machine code here (else it runs the twin).</summary>
    public static bool Native => s_code != null;

    static readonly Gpr[] s_bases = [Gpr.Rax, Gpr.R9, Gpr.R10, Gpr.Rbx, Gpr.R11];

    /// <summary>Row r's weight pair: base of its group of five, plus 0, s, 2s, 3s or 4s.</summary>
    static (Gpr Base, Gpr? Index, int Scale) Row(int r) => (s_bases[r / 5], (r % 5) switch
    {
        0 => null,
        3 => Gpr.Rcx,
        _ => Gpr.Rdx,
    }, (r % 5) switch { 2 => 2, 4 => 4, _ => 1 });

    /// <summary>The routine for <paramref name="rows"/> × <paramref name="tiles"/> (rdi = <see cref="DpBf16Args"/>*).</summary>
    internal static void Emit(X64Emitter e, int rows, int tiles)
    {
        if (rows < 1 || rows > (tiles == 1 ? MaxRows1 : MaxRows2) || tiles is < 1 or > 2)
            throw new ArgumentOutOfRangeException(nameof(rows), $"{rows} rows x {tiles} tiles: the routines take 1-{MaxRows1} rows of one tile or 1-{MaxRows2} of two");
        int groups = (rows + 4) / 5, accs = rows * tiles;
        e.Push(Gpr.Rbx);
        e.MovLoad(Gpr.Rsi, Gpr.Rdi, 16);
        if (tiles == 2) e.MovLoad(Gpr.R11, Gpr.Rdi, 24);
        e.MovLoad(Gpr.Rdx, Gpr.Rdi, 8);
        e.Lea(Gpr.Rcx, Gpr.Rdx, Gpr.Rdx, 2);
        e.MovLoad(Gpr.Rax, Gpr.Rdi, 0);
        for (int g = 1; g < groups; g++)
        {
            e.Lea(s_bases[g], s_bases[g - 1], Gpr.Rdx, 4);
            e.Add(s_bases[g], Gpr.Rdx);
        }
        e.MovLoad(Gpr.R8, Gpr.Rdi, 32);
        for (int i = 0; i < accs; i++) e.VMovUpsLoad(i, Gpr.R8, 64 * i);
        e.MovLoad(Gpr.R8, Gpr.Rdi, 40);
        int loop = e.Position;
        for (int u = 0; u < GroupPairs; u++)
        {
            e.VMovUpsLoad(30, Gpr.Rsi, 64 * u);
            if (tiles == 2) e.VMovUpsLoad(31, Gpr.Rsi, 64 * u, Gpr.R11);
            for (int r = 0; r < rows; r++)
            {
                var (b, ix, scale) = Row(r);
                e.VPBroadcastD(29, b, ix, scale, 4 * u);
                e.VDpBf16Ps(r, 30, 29);
                if (tiles == 2) e.VDpBf16Ps(rows + r, 31, 29);
            }
        }
        e.Add(Gpr.Rsi, 64 * GroupPairs);
        for (int g = 0; g < groups; g++) e.Add(s_bases[g], 4 * GroupPairs);
        e.Dec(Gpr.R8);
        e.Jnz(loop);
        e.MovLoad(Gpr.R8, Gpr.Rdi, 32);
        for (int i = 0; i < accs; i++) e.VMovUpsStore(Gpr.R8, 64 * i, i);
        e.VZeroUpper();
        e.Pop(Gpr.Rbx);
        e.Ret();
    }

    /// <summary>
    /// Runs the products of <paramref name="rows"/> weight rows × <paramref name="tiles"/> token tiles in machine code,
    /// or on the twin when <paramref name="emulate"/> is set or the code is absent. A call takes well under a
    /// millisecond (24 rows × 14336 columns: 172k instructions), so it skips the GC transition.
    /// </summary>
    public static void Run(DpBf16Args* a, int rows, int tiles, bool emulate)
    {
        if (emulate || s_code == null) Emulate(a, rows, tiles);
        else ((delegate* unmanaged[SuppressGCTransition]<DpBf16Args*, void>)(s_code + s_entries[Entry(rows, tiles)]))(a);
    }

    /// <summary>
    /// The routines' scalar twin: per pair, lane += x.odd·w.odd then += x.even·w.even in fp32 (a product of two bf16
    /// is exact in fp32), the order the SDM gives <c>vdpbf16ps</c>; the hardware also flushes subnormals, which the twin
    /// does not.
    /// </summary>
    public static void Emulate(DpBf16Args* a, int rows, int tiles)
    {
        nint pairs = a->Groups * GroupPairs;
        for (int n = 0; n < tiles; n++)
            for (int r = 0; r < rows; r++)
            {
                float* c = a->C + (n * rows + r) * 16;
                ushort* w = (ushort*)(a->W + r * a->WStride);
                ushort* x = (ushort*)(a->X + n * a->XTileStep);
                for (int t = 0; t < 16; t++)
                {
                    float acc = c[t];
                    for (nint p = 0; p < pairs; p++)
                    {
                        acc += Bf16.ToFloat(x[p * 32 + 2 * t + 1]) * Bf16.ToFloat(w[2 * p + 1]);
                        acc += Bf16.ToFloat(x[p * 32 + 2 * t]) * Bf16.ToFloat(w[2 * p]);
                    }
                    c[t] = acc;
                }
            }
    }
}
