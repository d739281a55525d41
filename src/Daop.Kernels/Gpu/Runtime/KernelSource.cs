// Typed launchers for kernels of 1 to 14 parameters, written out once per arity (C# has no variadic generics).
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Where a kernel set gets a launcher for one kernel of this build: the GPU and the kernel's catalog key. A launcher is
/// an <c>Action&lt;GpuStream, KernelConfig, A1, ...&gt;</c> whose <c>A</c>s are the kernel's parameters with every
/// <see cref="ArrayView{T}"/> as a <see cref="GpuView{T}"/>; binding checks their sizes against the kernel's.
/// </summary>
public readonly struct KernelSource(GpuContext gpu, string key)
{
    /// <summary>The GPU the launchers run on.</summary>
    public GpuContext Gpu { get; } = gpu;
    /// <summary>The kernel's catalog key.</summary>
    public string Key { get; } = key;

    GpuKernel Load(Delegate kernel, ReadOnlySpan<int> sizes)
    {
        var k = Gpu.LoadKernel(Key, kernel);
        k.CheckArguments(sizes);
        return k;
    }
    /// <summary>The launcher of a kernel of 1 parameter.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1> Bind<A1>(Delegate kernel) where A1 : unmanaged =>
        new Launch1<A1>(Load(kernel, [sizeof(A1)])).Invoke;
    /// <summary>The launcher of a kernel of 2 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2> Bind<A1, A2>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged =>
        new Launch2<A1, A2>(Load(kernel, [sizeof(A1), sizeof(A2)])).Invoke;
    /// <summary>The launcher of a kernel of 3 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3> Bind<A1, A2, A3>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged =>
        new Launch3<A1, A2, A3>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3)])).Invoke;
    /// <summary>The launcher of a kernel of 4 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4> Bind<A1, A2, A3, A4>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged =>
        new Launch4<A1, A2, A3, A4>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4)])).Invoke;
    /// <summary>The launcher of a kernel of 5 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5> Bind<A1, A2, A3, A4, A5>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged =>
        new Launch5<A1, A2, A3, A4, A5>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5)])).Invoke;
    /// <summary>The launcher of a kernel of 6 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6> Bind<A1, A2, A3, A4, A5, A6>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged =>
        new Launch6<A1, A2, A3, A4, A5, A6>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6)])).Invoke;
    /// <summary>The launcher of a kernel of 7 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7> Bind<A1, A2, A3, A4, A5, A6, A7>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged =>
        new Launch7<A1, A2, A3, A4, A5, A6, A7>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7)])).Invoke;
    /// <summary>The launcher of a kernel of 8 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8> Bind<A1, A2, A3, A4, A5, A6, A7, A8>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged =>
        new Launch8<A1, A2, A3, A4, A5, A6, A7, A8>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8)])).Invoke;
    /// <summary>The launcher of a kernel of 9 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged =>
        new Launch9<A1, A2, A3, A4, A5, A6, A7, A8, A9>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9)])).Invoke;
    /// <summary>The launcher of a kernel of 10 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged where A10 : unmanaged =>
        new Launch10<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9), sizeof(A10)])).Invoke;
    /// <summary>The launcher of a kernel of 11 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged where A10 : unmanaged where A11 : unmanaged =>
        new Launch11<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9), sizeof(A10), sizeof(A11)])).Invoke;
    /// <summary>The launcher of a kernel of 12 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged where A10 : unmanaged where A11 : unmanaged where A12 : unmanaged =>
        new Launch12<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9), sizeof(A10), sizeof(A11), sizeof(A12)])).Invoke;
    /// <summary>The launcher of a kernel of 13 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged where A10 : unmanaged where A11 : unmanaged where A12 : unmanaged where A13 : unmanaged =>
        new Launch13<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9), sizeof(A10), sizeof(A11), sizeof(A12), sizeof(A13)])).Invoke;
    /// <summary>The launcher of a kernel of 14 parameters.</summary>
    public unsafe Action<GpuStream, KernelConfig, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14> Bind<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14>(Delegate kernel) where A1 : unmanaged where A2 : unmanaged where A3 : unmanaged where A4 : unmanaged where A5 : unmanaged where A6 : unmanaged where A7 : unmanaged where A8 : unmanaged where A9 : unmanaged where A10 : unmanaged where A11 : unmanaged where A12 : unmanaged where A13 : unmanaged where A14 : unmanaged =>
        new Launch14<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14>(Load(kernel, [sizeof(A1), sizeof(A2), sizeof(A3), sizeof(A4), sizeof(A5), sizeof(A6), sizeof(A7), sizeof(A8), sizeof(A9), sizeof(A10), sizeof(A11), sizeof(A12), sizeof(A13), sizeof(A14)])).Invoke;
}

sealed unsafe class Launch1<A1>(GpuKernel k)
    where A1 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1]); return; }
        void** p = stackalloc void*[1];
        p[0] = &a1;
        k.Launch(s, c, p, 1);
    }
}

sealed unsafe class Launch2<A1, A2>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2]); return; }
        void** p = stackalloc void*[2];
        p[0] = &a1; p[1] = &a2;
        k.Launch(s, c, p, 2);
    }
}

sealed unsafe class Launch3<A1, A2, A3>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3]); return; }
        void** p = stackalloc void*[3];
        p[0] = &a1; p[1] = &a2; p[2] = &a3;
        k.Launch(s, c, p, 3);
    }
}

sealed unsafe class Launch4<A1, A2, A3, A4>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4]); return; }
        void** p = stackalloc void*[4];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4;
        k.Launch(s, c, p, 4);
    }
}

sealed unsafe class Launch5<A1, A2, A3, A4, A5>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5]); return; }
        void** p = stackalloc void*[5];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5;
        k.Launch(s, c, p, 5);
    }
}

sealed unsafe class Launch6<A1, A2, A3, A4, A5, A6>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6]); return; }
        void** p = stackalloc void*[6];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6;
        k.Launch(s, c, p, 6);
    }
}

sealed unsafe class Launch7<A1, A2, A3, A4, A5, A6, A7>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7]); return; }
        void** p = stackalloc void*[7];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7;
        k.Launch(s, c, p, 7);
    }
}

sealed unsafe class Launch8<A1, A2, A3, A4, A5, A6, A7, A8>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8]); return; }
        void** p = stackalloc void*[8];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8;
        k.Launch(s, c, p, 8);
    }
}

sealed unsafe class Launch9<A1, A2, A3, A4, A5, A6, A7, A8, A9>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9]); return; }
        void** p = stackalloc void*[9];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9;
        k.Launch(s, c, p, 9);
    }
}

sealed unsafe class Launch10<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
    where A10 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10]); return; }
        void** p = stackalloc void*[10];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9; p[9] = &a10;
        k.Launch(s, c, p, 10);
    }
}

sealed unsafe class Launch11<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
    where A10 : unmanaged
    where A11 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]); return; }
        void** p = stackalloc void*[11];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9; p[9] = &a10; p[10] = &a11;
        k.Launch(s, c, p, 11);
    }
}

sealed unsafe class Launch12<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
    where A10 : unmanaged
    where A11 : unmanaged
    where A12 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11, A12 a12)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12]); return; }
        void** p = stackalloc void*[12];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9; p[9] = &a10; p[10] = &a11; p[11] = &a12;
        k.Launch(s, c, p, 12);
    }
}

sealed unsafe class Launch13<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
    where A10 : unmanaged
    where A11 : unmanaged
    where A12 : unmanaged
    where A13 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11, A12 a12, A13 a13)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13]); return; }
        void** p = stackalloc void*[13];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9; p[9] = &a10; p[10] = &a11; p[11] = &a12; p[12] = &a13;
        k.Launch(s, c, p, 13);
    }
}

sealed unsafe class Launch14<A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14>(GpuKernel k)
    where A1 : unmanaged
    where A2 : unmanaged
    where A3 : unmanaged
    where A4 : unmanaged
    where A5 : unmanaged
    where A6 : unmanaged
    where A7 : unmanaged
    where A8 : unmanaged
    where A9 : unmanaged
    where A10 : unmanaged
    where A11 : unmanaged
    where A12 : unmanaged
    where A13 : unmanaged
    where A14 : unmanaged
{
    public void Invoke(GpuStream s, KernelConfig c, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11, A12 a12, A13 a13, A14 a14)
    {
        if (k.TakesBoxedArguments) { k.LaunchBoxed(s, c, [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14]); return; }
        void** p = stackalloc void*[14];
        p[0] = &a1; p[1] = &a2; p[2] = &a3; p[3] = &a4; p[4] = &a5; p[5] = &a6; p[6] = &a7; p[7] = &a8; p[8] = &a9; p[9] = &a10; p[10] = &a11; p[11] = &a12; p[12] = &a13; p[13] = &a14;
        k.Launch(s, c, p, 14);
    }
}
