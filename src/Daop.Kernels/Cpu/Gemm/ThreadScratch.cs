using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// A per-thread, 64-byte aligned native float buffer that only grows, so kernels allocate nothing once warm.
/// Lend it with <see cref="Rent"/>; a nested rent on the same thread gets a temporary buffer instead.
/// </summary>
/// <remarks>
/// Two independent buffers per thread: one for a whole call (prepared activations, lent by the calling thread)
/// and one for a parallel chunk (lent inside <see cref="IParallelJob.Execute"/>, which the caller also runs).
/// </remarks>
internal sealed unsafe class ThreadScratch
{
    [ThreadStatic] static ThreadScratch? t_call;
    [ThreadStatic] static ThreadScratch? t_chunk;

    float* _p;
    nint _capacity;
    bool _inUse;

    ~ThreadScratch()
    {
        if (_p != null) NativeMemory.AlignedFree(_p);
    }

    /// <summary>Lends at least <paramref name="floats"/> floats of the per-call buffer until the lease is disposed.</summary>
    public static Lease Rent(nint floats) => RentFrom(ref t_call, floats);

    /// <summary>Lends at least <paramref name="floats"/> floats of the per-chunk buffer until the lease is disposed.</summary>
    public static Lease RentChunk(nint floats) => RentFrom(ref t_chunk, floats);

    static Lease RentFrom(ref ThreadScratch? slot, nint floats)
    {
        var s = slot ??= new ThreadScratch();
        if (s._inUse) return new Lease(Alloc(floats), null);
        if (s._capacity < floats)
        {
            if (s._p != null) NativeMemory.AlignedFree(s._p);
            s._p = null;
            s._capacity = 0;
            s._p = Alloc(floats);
            s._capacity = floats;
        }
        s._inUse = true;
        return new Lease(s._p, s);
    }

    static float* Alloc(nint floats) => (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(floats, 16) * sizeof(float), 64);

    /// <summary>A borrowed buffer; dispose to give it back.</summary>
    public readonly ref struct Lease
    {
        public readonly float* Pointer;
        readonly ThreadScratch? _owner;

        public Lease(float* p, ThreadScratch? owner) { Pointer = p; _owner = owner; }

        public void Dispose()
        {
            if (_owner != null) _owner._inUse = false;
            else if (Pointer != null) NativeMemory.AlignedFree(Pointer);
        }
    }
}
