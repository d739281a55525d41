using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary><see cref="DType.Q4_K"/>: run r of the 128 quant bytes gives sub-block 2r its low nibbles, 2r+1 its high.</summary>
internal unsafe struct Q4_KFormat : IKQuantFormat
{
    public static DType Type => DType.Q4_K;
    public static int BlockBytes => 144;
    public static bool HasMin => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* sb, KUnpacked* u)
    {
        KScales.Unpack(sb, u);
        byte* qs = sb + 16;
        if (Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Create((byte)15);
            for (int r = 0; r < 4; r++)
            {
                var v = Vector256.Load(qs + 32 * r);
                (v & m).Store(u->U + 64 * r);
                Nibbles.High(v).Store(u->U + 64 * r + 32);
            }
            return;
        }
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < 32; i++)
            {
                u->U[64 * r + i] = (byte)(qs[32 * r + i] & 15);
                u->U[64 * r + 32 + i] = (byte)(qs[32 * r + i] >> 4);
            }
    }
}

/// <summary><see cref="DType.Q5_K"/>: Q4_K's nibbles (at byte 48) plus bit j of byte i of the 32 at byte 16 as 16s bit.</summary>
internal unsafe struct Q5_KFormat : IKQuantFormat
{
    public static DType Type => DType.Q5_K;
    public static int BlockBytes => 176;
    public static bool HasMin => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* sb, KUnpacked* u)
    {
        KScales.Unpack(sb, u);
        byte* qh = sb + 16, qs = sb + 48;
        if (Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Create((byte)15);
            var h = Vector256.Load(qh);
            var sixteen = Vector256.Create((byte)16);
            for (int r = 0; r < 4; r++)
            {
                var v = Vector256.Load(qs + 32 * r);
                var b0 = Vector256.Create((byte)(1 << 2 * r));
                var b1 = Vector256.Create((byte)(2 << 2 * r));
                ((v & m) | (Vector256.Equals(h & b0, b0) & sixteen)).Store(u->U + 64 * r);
                (Nibbles.High(v) | (Vector256.Equals(h & b1, b1) & sixteen)).Store(u->U + 64 * r + 32);
            }
            return;
        }
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < 32; i++)
            {
                u->U[64 * r + i] = (byte)((qs[32 * r + i] & 15) | (qh[i] >> 2 * r & 1) << 4);
                u->U[64 * r + 32 + i] = (byte)((qs[32 * r + i] >> 4) | (qh[i] >> 2 * r + 1 & 1) << 4);
            }
    }
}

/// <summary>
/// <see cref="DType.Q6_K"/>: per half of 128, 64 low-nibble bytes L and 32 high bytes H; quarter c takes nibbles of
/// L[32·(c &amp; 1) ..] (low for c &lt; 2) and bits 2c, 2c+1 of H; 16 int8 run scales at byte 192, d at 208.
/// </summary>
internal unsafe struct Q6_KFormat : IKQuantFormat
{
    public static DType Type => DType.Q6_K;
    public static int BlockBytes => 210;
    public static bool HasMin => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* sb, KUnpacked* u)
    {
        sbyte* sc = (sbyte*)(sb + 192);
        u->D = HalfBits.ToSingleFinite(*(ushort*)(sb + 208));
        for (int j = 0; j < 8; j++) u->SetScales(j, sc[2 * j], sc[2 * j + 1]);
        for (int k = 0; k < 16; k++) u->S16[k] = sc[k];
        if (Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Create((byte)15);
            var top = Vector256.Create((byte)0x30);
            for (int h = 0; h < 2; h++)
            {
                byte* o = u->U + 128 * h;
                var l0 = Vector256.Load(sb + 64 * h);
                var l1 = Vector256.Load(sb + 64 * h + 32);
                var hb = Vector256.Load(sb + 128 + 32 * h).AsUInt16();
                ((l0 & m) | (Vector256.ShiftLeft(hb, 4).AsByte() & top)).Store(o);
                ((l1 & m) | (Vector256.ShiftLeft(hb, 2).AsByte() & top)).Store(o + 32);
                (Nibbles.High(l0) | (hb.AsByte() & top)).Store(o + 64);
                (Nibbles.High(l1) | (Vector256.ShiftRightLogical(hb, 2).AsByte() & top)).Store(o + 96);
            }
            return;
        }
        for (int h = 0; h < 2; h++)
            for (int c = 0; c < 4; c++)
                for (int i = 0; i < 32; i++)
                {
                    int b = sb[64 * h + 32 * (c & 1) + i];
                    int lo = c < 2 ? b & 15 : b >> 4;
                    u->U[128 * h + 32 * c + i] = (byte)(lo | (sb[128 + 32 * h + i] >> 2 * c & 3) << 4);
                }
    }
}
