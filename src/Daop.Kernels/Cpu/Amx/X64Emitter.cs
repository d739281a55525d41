namespace Daop.Kernels.Cpu.Amx;

/// <summary>x86-64 general-purpose registers by encoding number.</summary>
internal enum Gpr : byte { Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 }

/// <summary>
/// A minimal x86-64 encoder: exactly the instructions the AMX tile routines need (AMX tile ops, 64-bit loads, adds, a
/// counted loop). .NET exposes no AMX intrinsics, so the routines are machine code written at run time, as oneDNN's
/// Xbyak does. Encodings follow the Intel SDM; the tests compare them with GNU as.
/// </summary>
internal sealed class X64Emitter
{
    readonly List<byte> _code = [];

    /// <summary>The bytes emitted so far.</summary>
    public byte[] ToArray() => [.. _code];

    /// <summary>Bytes emitted so far (a jump target).</summary>
    public int Position => _code.Count;

    void Byte(int b) => _code.Add((byte)b);

    void Int32(int v)
    {
        for (int i = 0; i < 4; i++) Byte(v >> (8 * i));
    }

    /// <summary>A three-byte VEX prefix for map 0F38, W0, L0 (all AMX instructions).</summary>
    void Vex0F38(int r, int x, int b, int vvvv, int pp)
    {
        Byte(0xC4);
        Byte(((~r & 1) << 7) | ((~x & 1) << 6) | ((~b & 1) << 5) | 0b00010);
        Byte(((~vvvv & 0xF) << 3) | pp);
    }

    /// <summary>ModRM (+ SIB when needed) + displacement for [base + disp] or [base + index·1 + disp].</summary>
    void Memory(int reg, Gpr @base, Gpr? index, int disp)
    {
        int b = (int)@base & 7;
        int mod = disp == 0 && b != 5 ? 0 : disp is >= -128 and <= 127 ? 1 : 2;
        if (index is { } ix)
        {
            if (ix == Gpr.Rsp) throw new ArgumentException("rsp cannot be an index register", nameof(index));
            Byte((mod << 6) | ((reg & 7) << 3) | 0b100);
            Byte((((int)ix & 7) << 3) | b); // scale 1
        }
        else
        {
            Byte((mod << 6) | ((reg & 7) << 3) | (b == 4 ? 0b100 : b));
            if (b == 4) Byte(0x24);
        }
        if (mod == 1) Byte(disp);
        else if (mod == 2) Int32(disp);
    }

    static int Hi(Gpr r) => (int)r >> 3;

    /// <summary>ldtilecfg [base]: load the 64-byte tile configuration.</summary>
    public void LdTileCfg(Gpr @base)
    {
        Vex0F38(0, 0, Hi(@base), 0, pp: 0);
        Byte(0x49);
        Memory(0, @base, null, 0);
    }

    /// <summary>tilerelease: return the tiles to their initial state (cheap context switches).</summary>
    public void TileRelease()
    {
        Vex0F38(0, 0, 0, 0, pp: 0);
        Byte(0x49);
        Byte(0xC0);
    }

    /// <summary>tilezero tmm.</summary>
    public void TileZero(int tmm)
    {
        Vex0F38(0, 0, 0, 0, pp: 3);
        Byte(0x49);
        Byte(0xC0 | (tmm << 3));
    }

    /// <summary>tileloadd tmm, [base + stride·1 + disp]: rows of the tile <paramref name="stride"/> bytes apart.</summary>
    public void TileLoadD(int tmm, Gpr @base, Gpr stride, int disp = 0)
    {
        Vex0F38(0, Hi(stride), Hi(@base), 0, pp: 3);
        Byte(0x4B);
        Memory(tmm, @base, stride, disp);
    }

    /// <summary>tilestored [base + stride·1 + disp], tmm.</summary>
    public void TileStoreD(Gpr @base, Gpr stride, int disp, int tmm)
    {
        Vex0F38(0, Hi(stride), Hi(@base), 0, pp: 2);
        Byte(0x4B);
        Memory(tmm, @base, stride, disp);
    }

    /// <summary>tdpbssd c, a, b: c[m][n] += Σ_k a[m][k]·b[k/4][4n + k%4], signed bytes into int32.</summary>
    public void TdpBssd(int c, int a, int b) => TileDot(0x5E, pp: 3, c, a, b);

    /// <summary>tdpbf16ps c, a, b: c[m][n] += Σ_k a[m][k]·b[k/2][2n + k%2], bf16 pairs into fp32.</summary>
    public void TdpBf16Ps(int c, int a, int b) => TileDot(0x5C, pp: 2, c, a, b);

    void TileDot(int opcode, int pp, int c, int a, int b)
    {
        Vex0F38(0, 0, 0, b, pp);
        Byte(opcode);
        Byte(0xC0 | (c << 3) | a);
    }

    /// <summary>mov dst, qword [base + disp].</summary>
    public void MovLoad(Gpr dst, Gpr @base, int disp)
    {
        Byte(0x48 | (Hi(dst) << 2) | Hi(@base));
        Byte(0x8B);
        Memory((int)dst, @base, null, disp);
    }

    /// <summary>add dst, src (64-bit).</summary>
    public void Add(Gpr dst, Gpr src)
    {
        Byte(0x48 | (Hi(src) << 2) | Hi(dst));
        Byte(0x01);
        Byte(0xC0 | (((int)src & 7) << 3) | ((int)dst & 7));
    }

    /// <summary>add dst, imm32 (64-bit, sign-extended).</summary>
    public void Add(Gpr dst, int imm)
    {
        Byte(0x48 | Hi(dst));
        Byte(0x81);
        Byte(0xC0 | ((int)dst & 7));
        Int32(imm);
    }

    /// <summary>dec reg (64-bit).</summary>
    public void Dec(Gpr reg)
    {
        Byte(0x48 | Hi(reg));
        Byte(0xFF);
        Byte(0xC8 | ((int)reg & 7));
    }

    /// <summary>jnz to the byte position <paramref name="target"/> (rel32).</summary>
    public void Jnz(int target)
    {
        Byte(0x0F);
        Byte(0x85);
        Int32(target - (Position + 4));
    }

    /// <summary>ret.</summary>
    public void Ret() => Byte(0xC3);
}
