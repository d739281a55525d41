using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// A per-thread, 64-byte aligned native float buffer that only grows, so kernels allocate nothing once warm.
/// Lend it with <see cref="Rent"/>; a nested rent on the same thread gets a temporary buffer instead.
/// </summary>
/// <remarks>
/// Two independent buffers per thread: one for a whole call (prepared activations, lent by the calling thread)
/// and one for a parallel chunk (lent inside <see cref="IParallelJob.Execute"/>, which the caller also runs).
/// The state is thread-static value fields, not an object, so even a thread's first rent allocates nothing on the
/// managed heap (decode's allocation test counts managed bytes, and a pool thread can take its first chunk at any step).
/// The native buffers live as long as their thread.
/// </remarks>
internal static unsafe class ThreadScratch
{
    struct Slot
    {
        public float* P;
        public nint Capacity;
        public bool InUse;
    }

    [ThreadStatic] static Slot t_call;
    [ThreadStatic] static Slot t_chunk;

    /// <summary>Lends at least <paramref name="floats"/> floats of the per-call buffer until the lease is disposed.</summary>
    public static Lease Rent(nint floats) => RentFrom(ref t_call, floats, chunk: false);

    /// <summary>Lends at least <paramref name="floats"/> floats of the per-chunk buffer until the lease is disposed.</summary>
    public static Lease RentChunk(nint floats) => RentFrom(ref t_chunk, floats, chunk: true);

    static Lease RentFrom(ref Slot s, nint floats, bool chunk)
    {
        if (s.InUse) return new Lease(Alloc(floats), Owner.None);
        if (s.Capacity < floats)
        {
            if (s.P != null) NativeMemory.AlignedFree(s.P);
            s.P = null;
            s.Capacity = 0;
            s.P = Alloc(floats);
            s.Capacity = floats;
        }
        s.InUse = true;
        return new Lease(s.P, chunk ? Owner.Chunk : Owner.Call);
    }

    static float* Alloc(nint floats) => (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(floats, 16) * sizeof(float), 64);

    internal enum Owner : byte { None, Call, Chunk }

    /// <summary>A borrowed buffer; dispose to give it back (on the thread that rented it).</summary>
    public readonly ref struct Lease
    {
        public readonly float* Pointer;
        readonly Owner _owner;

        internal Lease(float* p, Owner owner) { Pointer = p; _owner = owner; }

        public void Dispose()
        {
            switch (_owner)
            {
                case Owner.Call: t_call.InUse = false; break;
                case Owner.Chunk: t_chunk.InUse = false; break;
                default: if (Pointer != null) NativeMemory.AlignedFree(Pointer); break;
            }
        }
    }
}
