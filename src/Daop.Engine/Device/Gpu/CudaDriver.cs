using Daop.Engine.Device.Gpu.Cuda;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// The CUDA driver's event functions as the transfer queue uses them, over <see cref="CudaApi"/>. Every call needs the
/// GPU's context current on the calling thread (<c>Bind()</c>). Streams are CUstream handles (0 is the legacy default
/// stream). Failures throw <see cref="CudaException"/>.
/// </summary>
internal static unsafe class CudaDriver
{
    /// <summary>CU_EVENT_DEFAULT: timing enabled.</summary>
    public const uint EventDefault = 0;
    /// <summary>CU_EVENT_DISABLE_TIMING: cheaper to record and wait on.</summary>
    public const uint EventDisableTiming = 2;

    /// <summary>True when libcuda was found and exports every function the engine binds.</summary>
    public static bool Available => CudaApi.LibraryLoaded;

    static void Require()
    {
        if (!CudaApi.TryLoad(out var error)) throw new PlatformNotSupportedException(error);
    }

    /// <summary>cuEventCreate.</summary>
    public static nint EventCreate(uint flags)
    {
        Require();
        nint e;
        CudaApi.Check(CudaApi.cuEventCreate(&e, flags), "cuEventCreate");
        return e;
    }

    /// <summary>cuEventRecord: the event completes when the work queued on <paramref name="stream"/> so far has.</summary>
    public static void EventRecord(nint ev, nint stream) => CudaApi.Check(CudaApi.cuEventRecord(ev, stream), "cuEventRecord");

    /// <summary>cuStreamWaitEvent: later work on <paramref name="stream"/> waits for the event's latest record (the host does not wait).</summary>
    public static void StreamWaitEvent(nint stream, nint ev) => CudaApi.Check(CudaApi.cuStreamWaitEvent(stream, ev, 0), "cuStreamWaitEvent");

    /// <summary>cuEventSynchronize: the host waits for the event.</summary>
    public static void EventSynchronize(nint ev) => CudaApi.Check(CudaApi.cuEventSynchronize(ev), "cuEventSynchronize");

    /// <summary>cuEventQuery: true if the event has completed.</summary>
    public static bool EventQuery(nint ev)
    {
        int rc = CudaApi.cuEventQuery(ev);
        if (rc == CudaApi.ErrorNotReady) return false;
        CudaApi.Check(rc, "cuEventQuery");
        return true;
    }

    /// <summary>cuEventElapsedTime in milliseconds (both events completed, timing enabled).</summary>
    public static float EventElapsedMs(nint start, nint end)
    {
        float ms;
        CudaApi.Check(CudaApi.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    /// <summary>cuEventDestroy (safe while work still refers to the event); errors are ignored, as in any teardown.</summary>
    public static void EventDestroy(nint ev)
    {
        if (ev != 0) CudaApi.cuEventDestroy_v2(ev);
    }
}
