using Daop.Kernels.Gpu;
using System.Diagnostics;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Host→device expert copies into <see cref="ExpertSlotPool"/> slots on a dedicated stream, overlapping compute.
/// </summary>
/// <remarks>
/// <para>On CUDA (with libcuda's event functions) <see cref="Enqueue(int, int, int, int)"/> returns at once: the copy is queued on the
/// copy stream (a non-blocking ILGPU stream, so it does not serialise with the legacy default stream the compute runs
/// on) and followed by a per-slot event. Only when a kernel is about to read the slot does <see cref="BeforeUse"/>
/// make the compute stream wait for that event (cuStreamWaitEvent: a GPU-side wait, the host goes on). If the copy has
/// not landed by then, a pair of timing events around the wait measures how long the compute stream stalled
/// (<see cref="WaitSeconds"/>, resolved lazily by <see cref="Poll"/>).</para>
/// <para>Write-after-read: a slot may still be read by kernels queued earlier (its previous expert). The scheduler
/// reports each group of reads (one launch wave) with <see cref="MarkUsed"/> and <see cref="EndUse"/>, which records
/// one fence event on the compute stream after them; a copy into the slot first makes the copy stream wait for the
/// slot's latest fence (only the kernels that read it, not everything queued since).</para>
/// <para>On the ILGPU CPU accelerator (or without libcuda) every copy completes inside <see cref="Enqueue(int, int, int, int)"/>;
/// its whole duration counts as waiting.</para>
/// </remarks>
public sealed class ExpertTransferQueue : IDisposable
{
    readonly GpuDevice _d;
    readonly ExpertSlotPool _pool;
    readonly HostExpertStore _store;
    readonly nint _compute, _copy;                 // native stream handles (CUDA)
    readonly nint[] _slotEvent;                    // per global slot: event after the latest copy into it
    readonly bool[] _pending;                      // that copy has not been waited on by the compute stream yet
    readonly int[] _slotFence;                     // per global slot: fence after the latest queued read (-1: none)
    readonly List<nint> _fences = [];              // fence events (recorded on the compute stream after a group of reads)
    readonly List<int> _fenceRefs = [];            // slots bound to each fence
    readonly Stack<int> _freeFences = new();
    readonly List<int> _used = [];                 // slots read by the group being marked
    readonly List<(nint Start, nint End)> _timing = [];
    readonly Stack<nint> _spare = new();
    double _waitSeconds;
    bool _disposed;

    /// <summary>Copies from <paramref name="store"/> into <paramref name="pool"/> on a new stream of <paramref name="device"/>'s accelerator.</summary>
    public ExpertTransferQueue(GpuDevice device, ExpertSlotPool pool, HostExpertStore store)
    {
        _d = device;
        _pool = pool;
        _store = store;
        _slotEvent = new nint[pool.Slots];
        _pending = new bool[pool.Slots];
        _slotFence = Enumerable.Repeat(-1, pool.Slots).ToArray();
        CopyStream = device.Gpu.CreateStream();
        // Events order the two streams on CUDA; the CPU accelerator's copies complete before they return.
        IsAsync = !device.Gpu.IsCpu && CudaDriver.Available;
        if (IsAsync)
        {
            _compute = device.Stream.Handle;
            _copy = CopyStream.Handle;
        }
    }

    /// <summary>The stream copies run on.</summary>
    public GpuStream CopyStream { get; }
    /// <summary>True when copies overlap compute (CUDA events); false when each completes inside <see cref="Enqueue(int, int, int, int)"/>.</summary>
    public bool IsAsync { get; }
    /// <summary>Experts copied.</summary>
    public long Copies { get; private set; }
    /// <summary>Bytes copied (slot bytes per expert).</summary>
    public long Bytes { get; private set; }
    /// <summary>Times the compute stream had to wait for a copy still in flight (CUDA).</summary>
    public long Stalls { get; private set; }
    /// <summary>Seconds the compute stream waited for copies (CUDA: measured by events, up to the last <see cref="Poll"/>; CPU: every copy in full).</summary>
    public double WaitSeconds => _waitSeconds;

    /// <summary>Queues the copy of <paramref name="expert"/> of <paramref name="layer"/> into <paramref name="slot"/> (which the pool has assigned to it).</summary>
    public void Enqueue(int layer, int expert, int slot) => Enqueue(layer, expert, layer, slot);

    /// <summary>
    /// Queues the copy of <paramref name="expert"/> of model layer <paramref name="layer"/> into slot <paramref name="slot"/>
    /// of the pool's layer <paramref name="poolLayer"/> (a staging pool holds any layer's experts in its one layer).
    /// </summary>
    public void Enqueue(int layer, int expert, int poolLayer, int slot)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_pool.ExpertAt(poolLayer, slot) != expert)
            throw new InvalidOperationException($"slot {slot} of pool layer {poolLayer} holds expert {_pool.ExpertAt(poolLayer, slot)}, not {expert}");
        var target = _pool.SlotViews(poolLayer, slot);
        int g = _pool.GlobalSlot(poolLayer, slot);
        if (IsAsync)
        {
            _d.Gpu.Bind();
            if (_slotFence[g] is int f and >= 0)
            {
                // The previous expert may still be read by queued kernels: the copy waits for them (later copies into the
                // slot are behind this one on the copy stream, so the fence is no longer needed for it).
                CudaDriver.StreamWaitEvent(_copy, _fences[f]);
                Unbind(g);
            }
            _store.CopyTo(CopyStream, layer, expert, target);
            if (_slotEvent[g] == 0) _slotEvent[g] = CudaDriver.EventCreate(CudaDriver.EventDisableTiming);
            CudaDriver.EventRecord(_slotEvent[g], _copy);
            _pending[g] = true;
        }
        else
        {
            long t0 = Stopwatch.GetTimestamp();
            if (!_d.Gpu.IsCpu) _d.Stream.Synchronize(); // no events: kernels reading the slot must finish first
            _store.CopyTo(CopyStream, layer, expert, target);
            CopyStream.Synchronize();
            _waitSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Copies++;
        Bytes += _pool.ExpertBytes;
    }

    /// <summary>Orders the compute stream after the latest copy into the slot, if one is still pending. Call before queueing a kernel that reads it.</summary>
    public void BeforeUse(int layer, int slot)
    {
        int g = _pool.GlobalSlot(layer, slot);
        if (!IsAsync || !_pending[g]) return;
        _pending[g] = false;
        _d.Gpu.Bind();
        if (CudaDriver.EventQuery(_slotEvent[g])) return; // landed already: nothing to wait for
        Stalls++;
        nint a = Spare(), b = Spare();
        CudaDriver.EventRecord(a, _compute);
        CudaDriver.StreamWaitEvent(_compute, _slotEvent[g]);
        CudaDriver.EventRecord(b, _compute);
        _timing.Add((a, b));
    }

    /// <summary>
    /// Notes that kernels reading the slot have been queued on the compute stream; <see cref="EndUse"/> closes the group.
    /// A later copy into the slot waits for them.
    /// </summary>
    public void MarkUsed(int layer, int slot)
    {
        if (IsAsync) _used.Add(_pool.GlobalSlot(layer, slot));
    }

    /// <summary>Records one fence event on the compute stream after the kernels of the slots marked since the last call.</summary>
    public void EndUse()
    {
        if (!IsAsync || _used.Count == 0) return;
        _d.Gpu.Bind();
        int f;
        if (_freeFences.Count > 0) f = _freeFences.Pop();
        else
        {
            f = _fences.Count;
            _fences.Add(CudaDriver.EventCreate(CudaDriver.EventDisableTiming));
            _fenceRefs.Add(0);
        }
        CudaDriver.EventRecord(_fences[f], _compute);
        foreach (int g in _used)
        {
            Unbind(g);
            _slotFence[g] = f;
            _fenceRefs[f]++;
        }
        _used.Clear();
    }

    void Unbind(int g)
    {
        int f = _slotFence[g];
        if (f < 0) return;
        _slotFence[g] = -1;
        if (--_fenceRefs[f] == 0) _freeFences.Push(f);
    }

    nint Spare() => _spare.Count > 0 ? _spare.Pop() : CudaDriver.EventCreate(CudaDriver.EventDefault);

    /// <summary>Adds the stalls that have finished to <see cref="WaitSeconds"/> (CUDA; no-op elsewhere).</summary>
    public void Poll() => Resolve(wait: false);

    /// <summary>Waits for every queued copy (and resolves all stall timings).</summary>
    public void Synchronize()
    {
        CopyStream.Synchronize();
        Resolve(wait: true);
    }

    void Resolve(bool wait)
    {
        if (_timing.Count == 0) return;
        _d.Gpu.Bind();
        int kept = 0;
        for (int i = 0; i < _timing.Count; i++)
        {
            var (a, b) = _timing[i];
            if (wait) CudaDriver.EventSynchronize(b);
            else if (!CudaDriver.EventQuery(b)) { _timing[kept++] = _timing[i]; continue; }
            _waitSeconds += CudaDriver.EventElapsedMs(a, b) / 1e3;
            _spare.Push(a);
            _spare.Push(b);
        }
        _timing.RemoveRange(kept, _timing.Count - kept);
    }

    /// <summary>Waits for the copies, destroys the events and the copy stream.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { CopyStream.Synchronize(); } catch (Exception) { /* the accelerator may already be gone */ }
        if (IsAsync)
        {
            _d.Gpu.Bind();
            foreach (var e in _slotEvent) CudaDriver.EventDestroy(e);
            foreach (var e in _fences) CudaDriver.EventDestroy(e);
            foreach (var (a, b) in _timing) { CudaDriver.EventDestroy(a); CudaDriver.EventDestroy(b); }
            foreach (var e in _spare) CudaDriver.EventDestroy(e);
            _timing.Clear();
            _spare.Clear();
        }
        CopyStream.Dispose();
    }
}
