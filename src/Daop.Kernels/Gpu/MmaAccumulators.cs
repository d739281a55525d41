using System.Runtime.CompilerServices;
using ILGPU.Runtime.Cuda;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The mma accumulators of one warp's work item: 16 slots of one m16n8 tile (4 fp32 per lane) and the mma that adds
/// into a slot — a kernel type argument of <see cref="MmaKernels"/>.
/// </summary>
public interface IMmaAcc<TSelf> where TSelf : struct, IMmaAcc<TSelf>
{
    /// <summary>Called once at kernel entry, before any other member.</summary>
    void Declare();

    /// <summary>All slots set to zero.</summary>
    TSelf Zero();

    /// <summary>slot += A·B for one m16n8k16 bf16 tile: A in a0..a3, B in b0, b1 (two bf16 each). <paramref name="slot"/> must fold to a constant.</summary>
    TSelf Mma(int slot, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1);

    /// <summary>The slot's four values of this lane.</summary>
    Frag Read(int slot);
}

/// <summary>
/// Tensor-core accumulators: 64 PTX registers declared by inline assembly at kernel entry and updated in place by
/// <c>mma.sync</c>, so no operand passes through memory (inputs go in as registers; only <see cref="Read"/> copies out).
/// </summary>
public struct TensorCoreAcc : IMmaAcc<TensorCoreAcc>
{
#pragma warning disable CS0169, IDE0051 // ILGPU structs need a field
    int _pad;
#pragma warning restore CS0169, IDE0051

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Declare() => CudaAsm.Emit(".reg .f32 dacc<64>;");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly TensorCoreAcc Zero()
    {
        CudaAsm.Emit("mov.b32 dacc0, 0; mov.b32 dacc1, 0; mov.b32 dacc2, 0; mov.b32 dacc3, 0; mov.b32 dacc4, 0; mov.b32 dacc5, 0; mov.b32 dacc6, 0; mov.b32 dacc7, 0; mov.b32 dacc8, 0; mov.b32 dacc9, 0; mov.b32 dacc10, 0; mov.b32 dacc11, 0; mov.b32 dacc12, 0; mov.b32 dacc13, 0; mov.b32 dacc14, 0; mov.b32 dacc15, 0; mov.b32 dacc16, 0; mov.b32 dacc17, 0; mov.b32 dacc18, 0; mov.b32 dacc19, 0; mov.b32 dacc20, 0; mov.b32 dacc21, 0; mov.b32 dacc22, 0; mov.b32 dacc23, 0; mov.b32 dacc24, 0; mov.b32 dacc25, 0; mov.b32 dacc26, 0; mov.b32 dacc27, 0; mov.b32 dacc28, 0; mov.b32 dacc29, 0; mov.b32 dacc30, 0; mov.b32 dacc31, 0; mov.b32 dacc32, 0; mov.b32 dacc33, 0; mov.b32 dacc34, 0; mov.b32 dacc35, 0; mov.b32 dacc36, 0; mov.b32 dacc37, 0; mov.b32 dacc38, 0; mov.b32 dacc39, 0; mov.b32 dacc40, 0; mov.b32 dacc41, 0; mov.b32 dacc42, 0; mov.b32 dacc43, 0; mov.b32 dacc44, 0; mov.b32 dacc45, 0; mov.b32 dacc46, 0; mov.b32 dacc47, 0; mov.b32 dacc48, 0; mov.b32 dacc49, 0; mov.b32 dacc50, 0; mov.b32 dacc51, 0; mov.b32 dacc52, 0; mov.b32 dacc53, 0; mov.b32 dacc54, 0; mov.b32 dacc55, 0; mov.b32 dacc56, 0; mov.b32 dacc57, 0; mov.b32 dacc58, 0; mov.b32 dacc59, 0; mov.b32 dacc60, 0; mov.b32 dacc61, 0; mov.b32 dacc62, 0; mov.b32 dacc63, 0;");
        return this;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly TensorCoreAcc Mma(int slot, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        switch (slot)
        {
            case 0: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc0,dacc1,dacc2,dacc3}, {%0,%1,%2,%3}, {%4,%5}, {dacc0,dacc1,dacc2,dacc3};", a0, a1, a2, a3, b0, b1); break;
            case 1: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc4,dacc5,dacc6,dacc7}, {%0,%1,%2,%3}, {%4,%5}, {dacc4,dacc5,dacc6,dacc7};", a0, a1, a2, a3, b0, b1); break;
            case 2: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc8,dacc9,dacc10,dacc11}, {%0,%1,%2,%3}, {%4,%5}, {dacc8,dacc9,dacc10,dacc11};", a0, a1, a2, a3, b0, b1); break;
            case 3: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc12,dacc13,dacc14,dacc15}, {%0,%1,%2,%3}, {%4,%5}, {dacc12,dacc13,dacc14,dacc15};", a0, a1, a2, a3, b0, b1); break;
            case 4: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc16,dacc17,dacc18,dacc19}, {%0,%1,%2,%3}, {%4,%5}, {dacc16,dacc17,dacc18,dacc19};", a0, a1, a2, a3, b0, b1); break;
            case 5: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc20,dacc21,dacc22,dacc23}, {%0,%1,%2,%3}, {%4,%5}, {dacc20,dacc21,dacc22,dacc23};", a0, a1, a2, a3, b0, b1); break;
            case 6: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc24,dacc25,dacc26,dacc27}, {%0,%1,%2,%3}, {%4,%5}, {dacc24,dacc25,dacc26,dacc27};", a0, a1, a2, a3, b0, b1); break;
            case 7: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc28,dacc29,dacc30,dacc31}, {%0,%1,%2,%3}, {%4,%5}, {dacc28,dacc29,dacc30,dacc31};", a0, a1, a2, a3, b0, b1); break;
            case 8: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc32,dacc33,dacc34,dacc35}, {%0,%1,%2,%3}, {%4,%5}, {dacc32,dacc33,dacc34,dacc35};", a0, a1, a2, a3, b0, b1); break;
            case 9: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc36,dacc37,dacc38,dacc39}, {%0,%1,%2,%3}, {%4,%5}, {dacc36,dacc37,dacc38,dacc39};", a0, a1, a2, a3, b0, b1); break;
            case 10: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc40,dacc41,dacc42,dacc43}, {%0,%1,%2,%3}, {%4,%5}, {dacc40,dacc41,dacc42,dacc43};", a0, a1, a2, a3, b0, b1); break;
            case 11: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc44,dacc45,dacc46,dacc47}, {%0,%1,%2,%3}, {%4,%5}, {dacc44,dacc45,dacc46,dacc47};", a0, a1, a2, a3, b0, b1); break;
            case 12: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc48,dacc49,dacc50,dacc51}, {%0,%1,%2,%3}, {%4,%5}, {dacc48,dacc49,dacc50,dacc51};", a0, a1, a2, a3, b0, b1); break;
            case 13: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc52,dacc53,dacc54,dacc55}, {%0,%1,%2,%3}, {%4,%5}, {dacc52,dacc53,dacc54,dacc55};", a0, a1, a2, a3, b0, b1); break;
            case 14: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc56,dacc57,dacc58,dacc59}, {%0,%1,%2,%3}, {%4,%5}, {dacc56,dacc57,dacc58,dacc59};", a0, a1, a2, a3, b0, b1); break;
            case 15: CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {dacc60,dacc61,dacc62,dacc63}, {%0,%1,%2,%3}, {%4,%5}, {dacc60,dacc61,dacc62,dacc63};", a0, a1, a2, a3, b0, b1); break;
        }
        return this;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Frag Read(int slot)
    {
        Frag f = default;
        switch (slot)
        {
            case 0: CudaAsm.Emit("mov.f32 %0, dacc0;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc1;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc2;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc3;", out f.C3); break;
            case 1: CudaAsm.Emit("mov.f32 %0, dacc4;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc5;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc6;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc7;", out f.C3); break;
            case 2: CudaAsm.Emit("mov.f32 %0, dacc8;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc9;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc10;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc11;", out f.C3); break;
            case 3: CudaAsm.Emit("mov.f32 %0, dacc12;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc13;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc14;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc15;", out f.C3); break;
            case 4: CudaAsm.Emit("mov.f32 %0, dacc16;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc17;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc18;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc19;", out f.C3); break;
            case 5: CudaAsm.Emit("mov.f32 %0, dacc20;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc21;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc22;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc23;", out f.C3); break;
            case 6: CudaAsm.Emit("mov.f32 %0, dacc24;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc25;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc26;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc27;", out f.C3); break;
            case 7: CudaAsm.Emit("mov.f32 %0, dacc28;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc29;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc30;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc31;", out f.C3); break;
            case 8: CudaAsm.Emit("mov.f32 %0, dacc32;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc33;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc34;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc35;", out f.C3); break;
            case 9: CudaAsm.Emit("mov.f32 %0, dacc36;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc37;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc38;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc39;", out f.C3); break;
            case 10: CudaAsm.Emit("mov.f32 %0, dacc40;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc41;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc42;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc43;", out f.C3); break;
            case 11: CudaAsm.Emit("mov.f32 %0, dacc44;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc45;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc46;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc47;", out f.C3); break;
            case 12: CudaAsm.Emit("mov.f32 %0, dacc48;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc49;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc50;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc51;", out f.C3); break;
            case 13: CudaAsm.Emit("mov.f32 %0, dacc52;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc53;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc54;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc55;", out f.C3); break;
            case 14: CudaAsm.Emit("mov.f32 %0, dacc56;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc57;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc58;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc59;", out f.C3); break;
            case 15: CudaAsm.Emit("mov.f32 %0, dacc60;", out f.C0); CudaAsm.Emit("mov.f32 %0, dacc61;", out f.C1); CudaAsm.Emit("mov.f32 %0, dacc62;", out f.C2); CudaAsm.Emit("mov.f32 %0, dacc63;", out f.C3); break;
        }
        return f;
    }
}

/// <summary>
/// The same accumulators as plain fields, the mma from warp shuffles and fp32 arithmetic in the PTX fragment layout
/// (<see cref="MmaKernels.Emulated"/>): for the CPU accelerator with 32-wide warps, so tests check the tensor-core
/// kernels' tiling and indexing without a GPU.
/// </summary>
public struct EmulatedAcc : IMmaAcc<EmulatedAcc>
{
    Frag _s0, _s1, _s2, _s3, _s4, _s5, _s6, _s7, _s8, _s9, _s10, _s11, _s12, _s13, _s14, _s15;

    /// <inheritdoc />
    public readonly void Declare() { }

    /// <inheritdoc />
    public readonly EmulatedAcc Zero() => default;

    /// <inheritdoc />
    public EmulatedAcc Mma(int slot, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        switch (slot)
        {
            case 0: _s0 = MmaKernels.Emulated(_s0, a0, a1, a2, a3, b0, b1); break;
            case 1: _s1 = MmaKernels.Emulated(_s1, a0, a1, a2, a3, b0, b1); break;
            case 2: _s2 = MmaKernels.Emulated(_s2, a0, a1, a2, a3, b0, b1); break;
            case 3: _s3 = MmaKernels.Emulated(_s3, a0, a1, a2, a3, b0, b1); break;
            case 4: _s4 = MmaKernels.Emulated(_s4, a0, a1, a2, a3, b0, b1); break;
            case 5: _s5 = MmaKernels.Emulated(_s5, a0, a1, a2, a3, b0, b1); break;
            case 6: _s6 = MmaKernels.Emulated(_s6, a0, a1, a2, a3, b0, b1); break;
            case 7: _s7 = MmaKernels.Emulated(_s7, a0, a1, a2, a3, b0, b1); break;
            case 8: _s8 = MmaKernels.Emulated(_s8, a0, a1, a2, a3, b0, b1); break;
            case 9: _s9 = MmaKernels.Emulated(_s9, a0, a1, a2, a3, b0, b1); break;
            case 10: _s10 = MmaKernels.Emulated(_s10, a0, a1, a2, a3, b0, b1); break;
            case 11: _s11 = MmaKernels.Emulated(_s11, a0, a1, a2, a3, b0, b1); break;
            case 12: _s12 = MmaKernels.Emulated(_s12, a0, a1, a2, a3, b0, b1); break;
            case 13: _s13 = MmaKernels.Emulated(_s13, a0, a1, a2, a3, b0, b1); break;
            case 14: _s14 = MmaKernels.Emulated(_s14, a0, a1, a2, a3, b0, b1); break;
            case 15: _s15 = MmaKernels.Emulated(_s15, a0, a1, a2, a3, b0, b1); break;
        }
        return this;
    }

    /// <inheritdoc />
    public readonly Frag Read(int slot) => slot switch
    {
        0 => _s0,
        1 => _s1,
        2 => _s2,
        3 => _s3,
        4 => _s4,
        5 => _s5,
        6 => _s6,
        7 => _s7,
        8 => _s8,
        9 => _s9,
        10 => _s10,
        11 => _s11,
        12 => _s12,
        13 => _s13,
        14 => _s14,
        _ => _s15,
    };
}
