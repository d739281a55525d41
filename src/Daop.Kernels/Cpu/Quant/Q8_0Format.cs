using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.Q8_0"/>: an fp16 scale d and 32 signed bytes q; w = d·q. The unpacked bytes are q as stored
/// (<see cref="Offset"/> 0: signed, so the kernels use the sign trick).
/// </summary>
internal unsafe struct Q8_0Format : IBlockFormat
{
    public static DType Type => DType.Q8_0;
    public static int BlockBytes => 34;
    public static int Offset => 0;
    public static bool HasMin => false;
    public static float Min(byte* block) => 0f;
    public static Vector256<float> Mins4(byte* p) => default;
    public static Vector256<float> AddMins(Vector256<float> mins, byte* sums, Vector256<float> acc) => acc;
    public static bool Interleaved => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => (sbyte)block[2 + j];

    public static float Widen(byte* row, int c)
    {
        byte* block = row + (nint)(c / 32) * 34;
        return Scale(block) * Value(block, c % 32);
    }

    public static void WidenRow(byte* row, Span<float> dst) => BlockWidening.Row<Q8_0Format>(row, dst);

    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        BlockWidening.Panel<Q8_0Format>(row, cols, kb, kl, d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(Scale(p));
        return Vector256.Load(p + 2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale)
    {
        u0 = Vector256.Load(p + 2);
        u1 = Vector256.Load(p + 36);
        u2 = Vector256.Load(p + 70);
        u3 = Vector256.Load(p + 104);
        // The four halves (34 bytes apart) gathered into the top 16 bits of lanes [a b c d], twice.
        var h = Avx2.GatherVector128((int*)p, Vector128.Create(0, 34, 68, 102), 1).AsUInt32() << 16;
        scale = HalfBits.WidenFinite(Vector256.Create(h, h));
    }
}
