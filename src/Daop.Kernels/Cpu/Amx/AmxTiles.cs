using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>One weight matrix of a batched product on the tiles: y [tokens, rows] (YStride floats a token) = x·Wᵀ.</summary>
internal unsafe struct MatrixProblem
{
    public byte* W;
    public nint WStride;
    public float* Y;
    public nint YStride;
}

/// <summary>What one call of an <see cref="AmxTiles"/> routine reads (the machine code reads these offsets).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TileArgs
{
    /// <summary>Row tile 0's first step: 16 rows of 32 int8 or 32 bf16, <see cref="AStride"/> bytes apart.</summary>
    public byte* A;                // 0
    public nint AStride;           // 8
    /// <summary>Bytes from row tile 0 to row tile 1 (16 rows on).</summary>
    public nint ATileStep;         // 16
    /// <summary>Bytes from a step (block) of A to the next along its rows.</summary>
    public nint ABlockStep;        // 24
    /// <summary>
    /// Token tile 0's first step in the VNNI layout: int8 [8 groups of 4 columns][16 tokens][4] (512 bytes a block), or
    /// bf16 [16 pairs of columns][16 tokens][2] (1 KB a step of 32 columns).
    /// </summary>
    public byte* B;                // 32
    /// <summary>Bytes from token tile 0 to token tile 1.</summary>
    public nint BTileStep;         // 40
    /// <summary>
    /// Output, per (row tile m, token tile n) in m·nt + n order, 16 × 16 (row-major, 1 KB): int8, per block, int32;
    /// bf16, once for all steps, fp32.
    /// </summary>
    public void* C;                // 48
    /// <summary>Blocks or steps to run (≥ 1).</summary>
    public nint Blocks;            // 56
    /// <summary>64: the B and C tiles' row stride in bytes (a register operand of the tile loads and stores).</summary>
    public nint TileRowBytes;      // 64
}

/// <summary>
/// Tile products on AMX over <c>mt</c> row tiles of 16 weight rows and <c>nt</c> token tiles of 16 tokens (1 or 2 each).
/// Int8 (<c>tdpbssd</c>, signed × signed): for each block b of 32 columns, C_b[m][n] = A_b[m] · B_b[n] stored as int32,
/// so the caller can apply each block's scales (the 32-block formats scale every 32 columns, so the integer sums cannot
/// run across blocks). Bf16 (<c>tdpbf16ps</c>): C[m][n] = Σ_steps A_s[m] · B_s[n] accumulated in the tiles in fp32 and
/// stored once. The routines are machine code from <see cref="X64Emitter"/>; <see cref="EmulateInt8"/> and
/// <see cref="EmulateBf16"/> are their scalar twins, which run the same argument layout on any CPU.
/// </summary>
/// <remarks>
/// Tiles: t0–t3 the products (m·2 + n), t4–t5 the A tiles, t6–t7 the B tiles. Int8: A 16 × 32 bytes, B 8 × 64. Bf16:
/// A 16 × 64 bytes (32 bf16), B 16 × 64 (16 column pairs × 16 tokens). <see cref="Configure"/> loads a kind's tile
/// configuration once per parallel chunk and <see cref="Release"/> drops it, so a routine is only loads, products and
/// stores.
/// </remarks>
internal static unsafe class AmxTiles
{
    /// <summary>Bytes of one block of int8 B (8 rows × 64), one step of bf16 B (16 × 64), and one 16 × 16 tile of C.</summary>
    public const int BBlockBytes = 512, BStepBytes = 1024, CTileBytes = 1024;

    /// <summary>Weight rows the drivers give one routine call: two row tiles.</summary>
    public const int Panel = 32;

    /// <summary><see cref="RowChunks.Rows"/> for <paramref name="w"/>, rounded up to whole panels.</summary>
    public static int PanelChunk(in WeightMatrix w, int tokens) => (RowChunks.Rows(w.Rows, w.RowBytes, tokens) + Panel - 1) / Panel * Panel;

    /// <summary>
    /// The kinds of tile routine: int8 blocks of 32 columns, int8 blocks of 16 (the K-quants that scale every 16:
    /// A tiles 16 × 16 bytes, B 4 × 64, the first or second half of a 32-column block of B), and bf16.
    /// </summary>
    public enum Kind { Int8, Int8Half, Bf16 }

    static readonly byte*[] s_configs = [MakeConfig(Kind.Int8), MakeConfig(Kind.Int8Half), MakeConfig(Kind.Bf16)];
    static readonly byte* s_code;
    static readonly int[] s_entries = new int[14]; // configure, release, then (mt, nt) × 4 for each kind

    static AmxTiles()
    {
        if (!AmxSupport.Hardware) return;
        var e = new X64Emitter();
        s_entries[0] = e.Position;
        e.LdTileCfg(Gpr.Rdi);
        e.Ret();
        s_entries[1] = e.Position;
        e.TileRelease();
        e.Ret();
        foreach (var kind in new[] { Kind.Int8, Kind.Int8Half, Kind.Bf16 })
            for (int mt = 1; mt <= 2; mt++)
                for (int nt = 1; nt <= 2; nt++)
                {
                    s_entries[Entry(kind, mt, nt)] = e.Position;
                    if (kind == Kind.Bf16) EmitBf16(e, mt, nt);
                    else EmitInt8(e, mt, nt, kind == Kind.Int8 ? BBlockBytes : BBlockBytes / 2);
                }
        s_code = AmxSupport.MapExecutable(e.ToArray());
    }

    static int Entry(Kind kind, int mt, int nt) => 2 + 4 * (int)kind + (mt - 1) * 2 + (nt - 1);

    /// <summary>Palette 1; C tiles 16 × 64 bytes; int8: A 16 × 32, B 8 × 64; int8 halves: A 16 × 16, B 4 × 64; bf16: A and B 16 × 64.</summary>
    static byte* MakeConfig(Kind kind)
    {
        byte* c = (byte*)NativeMemory.AlignedAlloc(64, 64);
        new Span<byte>(c, 64).Clear();
        c[0] = 1;
        ushort* colsb = (ushort*)(c + 16);
        byte* rows = c + 48;
        for (int t = 0; t < 8; t++)
        {
            colsb[t] = (ushort)(t is 4 or 5 ? kind switch { Kind.Int8 => 32, Kind.Int8Half => 16, _ => 64 } : 64);
            rows[t] = (byte)(t >= 6 ? kind switch { Kind.Int8 => 8, Kind.Int8Half => 4, _ => 16 } : 16);
        }
        return c;
    }

    /// <summary>The argument registers both kinds use: see <see cref="EmitInt8"/>.</summary>
    static void LoadArgs(X64Emitter e, int mt, int nt)
    {
        // rax, r10: A of row tiles 0, 1; rcx, r11: B of token tiles 0, 1; rdx: C; r8: steps left; r9: A's row
        // stride; rsi: 64; rdi (last): A's step.
        e.MovLoad(Gpr.Rax, Gpr.Rdi, 0);
        e.MovLoad(Gpr.R9, Gpr.Rdi, 8);
        if (mt == 2) { e.MovLoad(Gpr.R10, Gpr.Rdi, 16); e.Add(Gpr.R10, Gpr.Rax); }
        e.MovLoad(Gpr.Rcx, Gpr.Rdi, 32);
        if (nt == 2) { e.MovLoad(Gpr.R11, Gpr.Rdi, 40); e.Add(Gpr.R11, Gpr.Rcx); }
        e.MovLoad(Gpr.Rdx, Gpr.Rdi, 48);
        e.MovLoad(Gpr.R8, Gpr.Rdi, 56);
        e.MovLoad(Gpr.Rsi, Gpr.Rdi, 64);
        e.MovLoad(Gpr.Rdi, Gpr.Rdi, 24);
    }

    /// <summary>One step's tile loads: B of each token tile, A of each row tile.</summary>
    static void LoadTiles(X64Emitter e, int mt, int nt)
    {
        e.TileLoadD(6, Gpr.Rcx, Gpr.Rsi);
        if (nt == 2) e.TileLoadD(7, Gpr.R11, Gpr.Rsi);
        e.TileLoadD(4, Gpr.Rax, Gpr.R9);
        if (mt == 2) e.TileLoadD(5, Gpr.R10, Gpr.R9);
    }

    /// <summary>Moves A and B to the next step (B by <paramref name="bStep"/> bytes).</summary>
    static void NextStep(X64Emitter e, int mt, int nt, int bStep)
    {
        e.Add(Gpr.Rax, Gpr.Rdi);
        if (mt == 2) e.Add(Gpr.R10, Gpr.Rdi);
        e.Add(Gpr.Rcx, bStep);
        if (nt == 2) e.Add(Gpr.R11, bStep);
    }

    static void StoreC(X64Emitter e, int mt, int nt)
    {
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++) e.TileStoreD(Gpr.Rdx, Gpr.Rsi, (m * nt + n) * CTileBytes, 2 * m + n);
    }

    /// <summary>
    /// The int8 routines (rdi = <see cref="TileArgs"/>*): per block, zero, multiply and store each C tile; B moves
    /// <paramref name="bStep"/> bytes a block (512 for 32 columns, 256 for 16).
    /// </summary>
    internal static void EmitInt8(X64Emitter e, int mt, int nt, int bStep)
    {
        LoadArgs(e, mt, nt);
        int loop = e.Position;
        LoadTiles(e, mt, nt);
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++)
            {
                e.TileZero(2 * m + n);
                e.TdpBssd(2 * m + n, 4 + m, 6 + n);
            }
        StoreC(e, mt, nt);
        NextStep(e, mt, nt, bStep);
        e.Add(Gpr.Rdx, mt * nt * CTileBytes);
        e.Dec(Gpr.R8);
        e.Jnz(loop);
        e.Ret();
    }

    /// <summary>The bf16 routine (rdi = <see cref="TileArgs"/>*): zero the C tiles, accumulate every step, store once.</summary>
    internal static void EmitBf16(X64Emitter e, int mt, int nt)
    {
        LoadArgs(e, mt, nt);
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++) e.TileZero(2 * m + n);
        int loop = e.Position;
        LoadTiles(e, mt, nt);
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++) e.TdpBf16Ps(2 * m + n, 4 + m, 6 + n);
        NextStep(e, mt, nt, BStepBytes);
        e.Dec(Gpr.R8);
        e.Jnz(loop);
        StoreC(e, mt, nt);
        e.Ret();
    }

    /// <summary>Loads <paramref name="kind"/>'s tile configuration on this thread (before its routines run).</summary>
    public static void Configure(Kind kind)
    {
        if (s_code != null)
            ((delegate* unmanaged[SuppressGCTransition]<byte*, void>)(s_code + s_entries[0]))(s_configs[(int)kind]);
    }

    /// <summary>Returns this thread's tiles to their initial state.</summary>
    public static void Release()
    {
        if (s_code != null) ((delegate* unmanaged[SuppressGCTransition]<void>)(s_code + s_entries[1]))();
    }

    /// <summary>
    /// Runs <paramref name="kind"/>'s products of <paramref name="a"/> for <paramref name="mt"/> row tiles ×
    /// <paramref name="nt"/> token tiles (1 or 2 each) on AMX (after <see cref="Configure"/>), or on the scalar twin when
    /// <paramref name="emulate"/> is set or AMX is absent. A call takes microseconds at most, so it skips the GC transition.
    /// </summary>
    public static void Run(Kind kind, TileArgs* a, int mt, int nt, bool emulate)
    {
        if (emulate || s_code == null)
        {
            if (kind == Kind.Bf16) EmulateBf16(a, mt, nt);
            else EmulateInt8(a, mt, nt, kind == Kind.Int8 ? 32 : 16);
            return;
        }
        a->TileRowBytes = 64;
        ((delegate* unmanaged[SuppressGCTransition]<TileArgs*, void>)(s_code + s_entries[Entry(kind, mt, nt)]))(a);
    }

    /// <summary>The int8 routines' scalar twin (blocks of <paramref name="k"/> = 32 or 16 columns): the same products, argument layout and output order.</summary>
    public static void EmulateInt8(TileArgs* a, int mt, int nt, int k)
    {
        int* c = (int*)a->C;
        for (nint b = 0; b < a->Blocks; b++)
            for (int m = 0; m < mt; m++)
                for (int n = 0; n < nt; n++)
                {
                    sbyte* at = (sbyte*)(a->A + m * a->ATileStep + b * a->ABlockStep);
                    sbyte* bt = (sbyte*)(a->B + n * a->BTileStep + b * k * 16);
                    int* ct = c + (b * mt * nt + m * nt + n) * (CTileBytes / 4);
                    for (int r = 0; r < 16; r++)
                        for (int t = 0; t < 16; t++)
                        {
                            int s = 0;
                            for (int i = 0; i < k; i++) s += at[r * a->AStride + i] * bt[(i >> 2) * 64 + t * 4 + (i & 3)];
                            ct[r * 16 + t] = s;
                        }
                }
    }

    /// <summary>
    /// The bf16 routines' scalar twin: per step, pair and element, c += a·b in fp32 (a product of two bf16 is exact in
    /// fp32), in the order the SDM gives <c>tdpbf16ps</c>; the hardware also flushes subnormals, which the twin does not.
    /// </summary>
    public static void EmulateBf16(TileArgs* a, int mt, int nt)
    {
        float* c = (float*)a->C;
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++)
            {
                float* ct = c + (m * nt + n) * (CTileBytes / 4);
                new Span<float>(ct, 256).Clear();
                for (nint s = 0; s < a->Blocks; s++)
                {
                    ushort* at = (ushort*)(a->A + m * a->ATileStep + s * a->ABlockStep);
                    ushort* bt = (ushort*)(a->B + n * a->BTileStep + s * BStepBytes);
                    for (int r = 0; r < 16; r++)
                        for (int t = 0; t < 16; t++)
                        {
                            float acc = ct[r * 16 + t];
                            for (int k = 0; k < 32; k++)
                                acc += Bf16.ToFloat(at[r * a->AStride / 2 + k]) * Bf16.ToFloat(bt[(k >> 1) * 32 + t * 2 + (k & 1)]);
                            ct[r * 16 + t] = acc;
                        }
                }
            }
    }

    /// <summary>Whether <see cref="Run"/> executes machine code here (else it emulates).</summary>
    public static bool Native
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => s_code != null;
    }
}
