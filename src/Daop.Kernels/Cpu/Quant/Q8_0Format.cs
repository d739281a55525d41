using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.Q8_0"/>: an fp16 scale d and 32 signed bytes q; w = d·q. The unpacked bytes are q as stored
/// (<see cref="Offset"/> 0: signed, so the kernels use the sign trick).
/// </summary>
internal unsafe struct Q8_0Format : IBlockFormat<Q8_0Format>
{
    public static DType Type => DType.Q8_0;
    public static int BlockBytes => 34;
    public static int Offset => 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => (sbyte)block[2 + j];

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
        var a = Vector256.Load(p + 2);
        var b = Vector256.Load(p + 36);
        var c = Vector256.Load(p + 70);
        var d = Vector256.Load(p + 104);
        // The four halves (34 bytes apart) gathered into the top 16 bits of lanes [a b c d].
        var h = Avx2.GatherVector128((int*)p, Vector128.Create(0, 34, 68, 102), 1).AsUInt32() << 16;
        if (Quad.Biased<Q8_0Format>())
        {
            // in halves: [a 0–15 | b 0–15], [a 16–31 | b 16–31], the same for c d; scales [a a c c b b d d]
            u0 = Avx2.Permute2x128(a, b, 0x20); u1 = Avx2.Permute2x128(a, b, 0x31);
            u2 = Avx2.Permute2x128(c, d, 0x20); u3 = Avx2.Permute2x128(c, d, 0x31);
            scale = HalfBits.WidenFinite(Avx2.PermuteVar8x32(Vector256.Create(h, h), Vector256.Create(0u, 0, 2, 2, 1, 1, 3, 3)));
            return;
        }
        u0 = a; u1 = b; u2 = c; u3 = d;
        scale = HalfBits.WidenFinite(Vector256.Create(h, h));
    }
}
