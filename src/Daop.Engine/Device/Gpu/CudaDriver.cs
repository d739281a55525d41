using System.Runtime.InteropServices;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// The few CUDA driver event functions ILGPU does not wrap, bound at run time from libcuda (nvcuda on Windows) as
/// unmanaged function pointers (no marshalling, trimming-safe). Every call needs the accelerator's context current on
/// the calling thread (<c>Accelerator.Bind()</c>). Streams are ILGPU's native handles (<c>CudaStream.StreamPtr</c>;
/// 0 is the legacy default stream).
/// </summary>
internal static unsafe class CudaDriver
{
    const int Success = 0, NotReady = 600;
    /// <summary>CU_EVENT_DEFAULT: timing enabled.</summary>
    public const uint EventDefault = 0;
    /// <summary>CU_EVENT_DISABLE_TIMING: cheaper to record and wait on.</summary>
    public const uint EventDisableTiming = 2;

    static readonly delegate* unmanaged<nint*, uint, int> s_eventCreate;
    static readonly delegate* unmanaged<nint, nint, int> s_eventRecord;
    static readonly delegate* unmanaged<nint, nint, uint, int> s_streamWaitEvent;
    static readonly delegate* unmanaged<nint, int> s_eventSynchronize;
    static readonly delegate* unmanaged<nint, int> s_eventQuery;
    static readonly delegate* unmanaged<float*, nint, nint, int> s_eventElapsed;
    static readonly delegate* unmanaged<nint, int> s_eventDestroy;

    /// <summary>True when libcuda was found and exports every function used here.</summary>
    public static bool Available { get; }

    static CudaDriver()
    {
        foreach (var name in new[] { "libcuda.so.1", "libcuda.so", "nvcuda.dll" })
        {
            if (!NativeLibrary.TryLoad(name, out var lib)) continue;
            nint Get(string f) => NativeLibrary.TryGetExport(lib, f, out var p) ? p : 0;
            nint create = Get("cuEventCreate"), record = Get("cuEventRecord"), wait = Get("cuStreamWaitEvent"),
                sync = Get("cuEventSynchronize"), query = Get("cuEventQuery"), elapsed = Get("cuEventElapsedTime"),
                destroy = Get("cuEventDestroy_v2");
            if (destroy == 0) destroy = Get("cuEventDestroy");
            if (create == 0 || record == 0 || wait == 0 || sync == 0 || query == 0 || elapsed == 0 || destroy == 0) continue;
            s_eventCreate = (delegate* unmanaged<nint*, uint, int>)create;
            s_eventRecord = (delegate* unmanaged<nint, nint, int>)record;
            s_streamWaitEvent = (delegate* unmanaged<nint, nint, uint, int>)wait;
            s_eventSynchronize = (delegate* unmanaged<nint, int>)sync;
            s_eventQuery = (delegate* unmanaged<nint, int>)query;
            s_eventElapsed = (delegate* unmanaged<float*, nint, nint, int>)elapsed;
            s_eventDestroy = (delegate* unmanaged<nint, int>)destroy;
            Available = true;
            return;
        }
    }

    static void Check(int rc, string what)
    {
        if (rc != Success) throw new InvalidOperationException($"CUDA driver {what} failed with error {rc}");
    }

    static void Require()
    {
        if (!Available) throw new PlatformNotSupportedException("the CUDA driver library (libcuda) was not found");
    }

    /// <summary>cuEventCreate.</summary>
    public static nint EventCreate(uint flags)
    {
        Require();
        nint e;
        Check(s_eventCreate(&e, flags), "cuEventCreate");
        return e;
    }

    /// <summary>cuEventRecord: the event completes when the work queued on <paramref name="stream"/> so far has.</summary>
    public static void EventRecord(nint ev, nint stream) => Check(s_eventRecord(ev, stream), "cuEventRecord");

    /// <summary>cuStreamWaitEvent: later work on <paramref name="stream"/> waits for the event's latest record (the host does not wait).</summary>
    public static void StreamWaitEvent(nint stream, nint ev) => Check(s_streamWaitEvent(stream, ev, 0), "cuStreamWaitEvent");

    /// <summary>cuEventSynchronize: the host waits for the event.</summary>
    public static void EventSynchronize(nint ev) => Check(s_eventSynchronize(ev), "cuEventSynchronize");

    /// <summary>cuEventQuery: true if the event has completed.</summary>
    public static bool EventQuery(nint ev)
    {
        int rc = s_eventQuery(ev);
        if (rc == NotReady) return false;
        Check(rc, "cuEventQuery");
        return true;
    }

    /// <summary>cuEventElapsedTime in milliseconds (both events completed, timing enabled).</summary>
    public static float EventElapsedMs(nint start, nint end)
    {
        float ms;
        Check(s_eventElapsed(&ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    /// <summary>cuEventDestroy (safe while work still refers to the event).</summary>
    public static void EventDestroy(nint ev)
    {
        if (ev != 0) s_eventDestroy(ev);
    }
}
