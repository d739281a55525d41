using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>What one call of an <see cref="Int8BlockTiles"/> routine reads (the machine code reads these offsets).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Int8TileArgs
{
    /// <summary>Row tile 0's bytes of block 0: 16 rows of 32 int8, <see cref="AStride"/> bytes apart.</summary>
    public byte* A;                // 0
    public nint AStride;           // 8
    /// <summary>Bytes from row tile 0 to row tile 1 (16 rows on).</summary>
    public nint ATileStep;         // 16
    /// <summary>Bytes from a block of A to the next along its rows.</summary>
    public nint ABlockStep;        // 24
    /// <summary>Token tile 0's block 0 in the VNNI layout: [8 groups of 4 columns][16 tokens][4] int8, 512 bytes a block.</summary>
    public byte* B;                // 32
    /// <summary>Bytes from token tile 0 to token tile 1.</summary>
    public nint BTileStep;         // 40
    /// <summary>Output: per block, per (row tile m, token tile n) in m·nt + n order, 16 × 16 int32 (row-major, 1 KB).</summary>
    public int* C;                 // 48
    /// <summary>Blocks to run (≥ 1).</summary>
    public nint Blocks;            // 56
    /// <summary>64: the B and C tiles' row stride in bytes (a register operand of the tile loads and stores).</summary>
    public nint TileRowBytes;      // 64
}

/// <summary>
/// Per-block int8 tile products on AMX: for each block b of 32 columns, C_b[m][n] = A_b[m] · B_b[n] over
/// <c>mt</c> row tiles of 16 weight rows and <c>nt</c> token tiles of 16 tokens (signed × signed, <c>tdpbssd</c>),
/// stored as int32 so the caller can apply each block's scales (Q8_0-style formats scale every 32 columns, so the
/// integer sums cannot run across blocks). The routines are machine code from <see cref="X64Emitter"/>;
/// <see cref="Emulate"/> is their scalar twin, which runs the same argument layout on any CPU.
/// </summary>
/// <remarks>
/// Tiles: t0–t3 the int32 products (m·2 + n), t4–t5 the A tiles (16 × 32 bytes), t6–t7 the B tiles (8 × 64 bytes).
/// <see cref="Configure"/> loads the tile configuration once per parallel chunk and <see cref="Release"/> drops it,
/// so each block call is only loads, products and stores.
/// </remarks>
internal static unsafe class Int8BlockTiles
{
    /// <summary>Bytes of one block of B (8 rows × 64) and of one 16 × 16 int32 tile of C.</summary>
    public const int BBlockBytes = 512, CTileBytes = 1024;

    static readonly byte* s_config = MakeConfig();
    static readonly byte* s_code;
    static readonly int[] s_entries = new int[6]; // configure, release, blocks(1,1), (1,2), (2,1), (2,2)

    static Int8BlockTiles()
    {
        if (!AmxSupport.Int8) return;
        var e = new X64Emitter();
        s_entries[0] = e.Position;
        e.LdTileCfg(Gpr.Rdi);
        e.Ret();
        s_entries[1] = e.Position;
        e.TileRelease();
        e.Ret();
        for (int mt = 1; mt <= 2; mt++)
            for (int nt = 1; nt <= 2; nt++)
            {
                s_entries[2 + (mt - 1) * 2 + (nt - 1)] = e.Position;
                EmitBlocks(e, mt, nt);
            }
        s_code = AmxSupport.MapExecutable(e.ToArray());
    }

    /// <summary>The tile configuration: palette 1, tiles 0–3 16 × 64 bytes, 4–5 16 × 32, 6–7 8 × 64.</summary>
    static byte* MakeConfig()
    {
        byte* c = (byte*)NativeMemory.AlignedAlloc(64, 64);
        new Span<byte>(c, 64).Clear();
        c[0] = 1;
        ushort* colsb = (ushort*)(c + 16);
        byte* rows = c + 48;
        for (int t = 0; t < 8; t++)
        {
            colsb[t] = (ushort)(t is 4 or 5 ? 32 : 64);
            rows[t] = (byte)(t >= 6 ? 8 : 16);
        }
        return c;
    }

    /// <summary>The machine code of one routine: rdi = <see cref="Int8TileArgs"/>*.</summary>
    internal static void EmitBlocks(X64Emitter e, int mt, int nt)
    {
        // rax, r10: A of row tiles 0, 1; rcx, r11: B of token tiles 0, 1; rdx: C; r8: blocks left; r9: A's row
        // stride; rsi: 64; rdi (last): A's block step.
        e.MovLoad(Gpr.Rax, Gpr.Rdi, 0);
        e.MovLoad(Gpr.R9, Gpr.Rdi, 8);
        if (mt == 2) { e.MovLoad(Gpr.R10, Gpr.Rdi, 16); e.Add(Gpr.R10, Gpr.Rax); }
        e.MovLoad(Gpr.Rcx, Gpr.Rdi, 32);
        if (nt == 2) { e.MovLoad(Gpr.R11, Gpr.Rdi, 40); e.Add(Gpr.R11, Gpr.Rcx); }
        e.MovLoad(Gpr.Rdx, Gpr.Rdi, 48);
        e.MovLoad(Gpr.R8, Gpr.Rdi, 56);
        e.MovLoad(Gpr.Rsi, Gpr.Rdi, 64);
        e.MovLoad(Gpr.Rdi, Gpr.Rdi, 24);
        int loop = e.Position;
        e.TileLoadD(6, Gpr.Rcx, Gpr.Rsi);
        if (nt == 2) e.TileLoadD(7, Gpr.R11, Gpr.Rsi);
        e.TileLoadD(4, Gpr.Rax, Gpr.R9);
        if (mt == 2) e.TileLoadD(5, Gpr.R10, Gpr.R9);
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++)
            {
                e.TileZero(2 * m + n);
                e.TdpBssd(2 * m + n, 4 + m, 6 + n);
            }
        for (int m = 0; m < mt; m++)
            for (int n = 0; n < nt; n++) e.TileStoreD(Gpr.Rdx, Gpr.Rsi, (m * nt + n) * CTileBytes, 2 * m + n);
        e.Add(Gpr.Rax, Gpr.Rdi);
        if (mt == 2) e.Add(Gpr.R10, Gpr.Rdi);
        e.Add(Gpr.Rcx, BBlockBytes);
        if (nt == 2) e.Add(Gpr.R11, BBlockBytes);
        e.Add(Gpr.Rdx, mt * nt * CTileBytes);
        e.Dec(Gpr.R8);
        e.Jnz(loop);
        e.Ret();
    }

    /// <summary>Loads the tile configuration on this thread (before <see cref="Run"/>).</summary>
    public static void Configure()
    {
        if (s_code != null) ((delegate* unmanaged[SuppressGCTransition]<byte*, void>)(s_code + s_entries[0]))(s_config);
    }

    /// <summary>Returns this thread's tiles to their initial state.</summary>
    public static void Release()
    {
        if (s_code != null) ((delegate* unmanaged[SuppressGCTransition]<void>)(s_code + s_entries[1]))();
    }

    /// <summary>
    /// Runs the products of <paramref name="a"/> for <paramref name="mt"/> row tiles × <paramref name="nt"/> token tiles
    /// (1 or 2 each) on AMX, or on <see cref="Emulate"/> when <paramref name="emulate"/> is set or AMX is absent.
    /// A block call takes well under a microsecond, so it skips the GC transition.
    /// </summary>
    public static void Run(Int8TileArgs* a, int mt, int nt, bool emulate)
    {
        if (emulate || s_code == null) { Emulate(a, mt, nt); return; }
        a->TileRowBytes = 64;
        ((delegate* unmanaged[SuppressGCTransition]<Int8TileArgs*, void>)(s_code + s_entries[2 + (mt - 1) * 2 + (nt - 1)]))(a);
    }

    /// <summary>The scalar twin of the routines: the same products, argument layout and output order.</summary>
    public static void Emulate(Int8TileArgs* a, int mt, int nt)
    {
        int* c = a->C;
        for (nint b = 0; b < a->Blocks; b++)
            for (int m = 0; m < mt; m++)
                for (int n = 0; n < nt; n++)
                {
                    sbyte* at = (sbyte*)(a->A + m * a->ATileStep + b * a->ABlockStep);
                    sbyte* bt = (sbyte*)(a->B + n * a->BTileStep + b * BBlockBytes);
                    int* ct = c + (b * mt * nt + m * nt + n) * (CTileBytes / 4);
                    for (int r = 0; r < 16; r++)
                        for (int t = 0; t < 16; t++)
                        {
                            int s = 0;
                            for (int k = 0; k < 32; k++) s += at[r * a->AStride + k] * bt[(k >> 2) * 64 + t * 4 + (k & 3)];
                            ct[r * 16 + t] = s;
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
