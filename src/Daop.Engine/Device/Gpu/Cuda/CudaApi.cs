// The CUDA driver API functions the engine uses, bound with [LibraryImport]: every signature is blittable (handles as
// nint, sizes as nuint, out-values as pointers), so the generated stubs marshal nothing and NativeAOT compiles them.
using System.Reflection;
using System.Runtime.InteropServices;

namespace Daop.Engine.Device.Gpu.Cuda;

/// <summary>
/// Bindings to the CUDA driver API (libcuda.so.1 on Linux, nvcuda.dll on Windows). Call <see cref="Load"/> (or
/// <see cref="TryLoad"/>) before anything else: it finds the library, checks its exports and initialises the driver,
/// so a missing driver is a clear message rather than a DllNotFoundException from the first call. Every function but
/// the version, device and error queries needs a context current on the calling thread.
/// </summary>
internal static unsafe partial class CudaApi
{
    const string Lib = "cuda";

    /// <summary>CUDA_SUCCESS.</summary>
    public const int Success = 0;
    /// <summary>CUDA_ERROR_OUT_OF_MEMORY.</summary>
    public const int ErrorOutOfMemory = 2;
    /// <summary>CUDA_ERROR_NO_DEVICE.</summary>
    public const int ErrorNoDevice = 100;
    /// <summary>CUDA_ERROR_NOT_READY (cuEventQuery: not yet).</summary>
    public const int ErrorNotReady = 600;

    /// <summary>CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK.</summary>
    public const int AttributeMaxThreadsPerBlock = 1;
    /// <summary>CU_DEVICE_ATTRIBUTE_WARP_SIZE.</summary>
    public const int AttributeWarpSize = 10;
    /// <summary>CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT.</summary>
    public const int AttributeMultiprocessorCount = 16;
    /// <summary>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR.</summary>
    public const int AttributeComputeCapabilityMajor = 75;
    /// <summary>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR.</summary>
    public const int AttributeComputeCapabilityMinor = 76;

    /// <summary>CU_STREAM_NON_BLOCKING: the stream does not synchronise with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 1;
    /// <summary>CU_MEMHOSTALLOC_PORTABLE: the pinned memory counts as pinned in every context.</summary>
    public const uint MemHostAllocPortable = 1;
    /// <summary>CU_STREAM_CAPTURE_MODE_THREAD_LOCAL.</summary>
    public const int CaptureModeThreadLocal = 1;
    /// <summary>CU_JIT_ERROR_LOG_BUFFER.</summary>
    public const int JitErrorLogBuffer = 5;
    /// <summary>CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES.</summary>
    public const int JitErrorLogBufferSizeBytes = 6;

    // Every export bound below: Load checks them all, so an old driver fails with the missing names, not an
    // EntryPointNotFoundException at some later call.
    static readonly string[] s_exports =
    [
        "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetAttribute",
        "cuDeviceTotalMem_v2", "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent",
        "cuCtxGetCurrent", "cuCtxSynchronize", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemGetInfo_v2",
        "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2", "cuMemsetD8Async", "cuMemHostAlloc",
        "cuMemFreeHost", "cuStreamCreate", "cuStreamDestroy_v2", "cuStreamSynchronize", "cuStreamWaitEvent",
        "cuEventCreate", "cuEventRecord", "cuEventSynchronize", "cuEventQuery", "cuEventElapsedTime",
        "cuEventDestroy_v2", "cuModuleLoadDataEx", "cuModuleGetFunction", "cuModuleUnload", "cuLaunchKernel",
        "cuGetErrorName", "cuGetErrorString", "cuStreamBeginCapture_v2", "cuStreamEndCapture",
        "cuGraphInstantiateWithFlags", "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy",
    ];

    static readonly Lock s_lock = new();
    static nint s_library;
    static bool s_opened;
    static string? s_loadError;
    static int s_initResult = -1;
    static volatile bool s_bound; // the library is open with every export and "cuda" resolves to it

    /// <summary>The file name the driver goes by on this OS, for messages.</summary>
    public static string LibraryName => OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

    static IEnumerable<string> Candidates() =>
        OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];

    static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path) => name == Lib ? s_library : 0;

    /// <summary>
    /// Finds and initialises the driver once (later calls return the first answer). False with
    /// <paramref name="error"/> set when the library is missing, lacks an export this engine binds, or cuInit fails.
    /// </summary>
    public static bool TryLoad(out string? error)
    {
        lock (s_lock)
        {
            if (!s_opened)
            {
                s_opened = true;
                s_loadError = Open();
            }
            if (s_loadError is null && s_initResult < 0) s_initResult = cuInit(0);
            error = s_loadError ?? (s_initResult == Success ? null : CudaException.Describe("cuInit", s_initResult));
            return error is null;
        }
    }

    /// <summary>True when the library is loaded with every export, whether or not cuInit found a device.</summary>
    public static bool LibraryLoaded
    {
        get
        {
            TryLoad(out _);
            return s_bound;
        }
    }

    /// <summary><see cref="TryLoad"/>, throwing its error: <see cref="InvalidOperationException"/> for a missing or old driver, <see cref="CudaException"/> when cuInit fails.</summary>
    public static void Load()
    {
        if (TryLoad(out var error)) return;
        lock (s_lock)
            if (s_loadError is not null) throw new InvalidOperationException(s_loadError);
        throw new CudaException("cuInit", s_initResult);
    }

    // Returns null on success, else the message. Called once, under s_lock.
    static string? Open()
    {
        string? why = null;
        foreach (var name in Candidates())
        {
            try
            {
                s_library = NativeLibrary.Load(name);
                break;
            }
            catch (DllNotFoundException e)
            {
                why ??= LoaderReason(e.Message); // the first (preferred) name's says most
            }
            catch (BadImageFormatException e)
            {
                why ??= e.Message;
            }
        }
        if (s_library == 0)
            return $"the CUDA driver ({LibraryName}) was not found: {why} (install the NVIDIA driver, or run on the CPU)";
        var missing = s_exports.Where(f => !NativeLibrary.TryGetExport(s_library, f, out _)).ToList();
        if (missing.Count > 0)
            return $"the CUDA driver ({LibraryName}) lacks {string.Join(", ", missing)}: it is older than CUDA 11.4; update the NVIDIA driver";
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(CudaApi).Assembly, Resolve);
        }
        catch (InvalidOperationException e)
        {
            // Only one resolver per assembly: another one would have to map "cuda" itself.
            return $"cannot bind the CUDA driver: {e.Message}";
        }
        s_bound = true;
        return null;
    }

    // The runtime's message is advice on strace and LD_DEBUG, then the loader's own reason on its last line
    // ("libcuda.so.1: cannot open shared object file: No such file or directory"): keep that line.
    internal static string LoaderReason(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length > 1 ? lines[^1] : message.Trim();
    }

    /// <summary>The driver's name for an error code (CUDA_ERROR_...), or null for a code it does not know.</summary>
    public static string? ErrorName(int error)
    {
        if (!s_bound) return null; // only asked after a call into the driver, so after TryLoad
        byte* s = null;
        return cuGetErrorName(error, &s) == Success && s != null ? Marshal.PtrToStringUTF8((nint)s) : null;
    }

    /// <summary>The driver's description of an error code, or null for a code it does not know.</summary>
    public static string? ErrorString(int error)
    {
        if (!s_bound) return null;
        byte* s = null;
        return cuGetErrorString(error, &s) == Success && s != null ? Marshal.PtrToStringUTF8((nint)s) : null;
    }

    /// <summary>Throws <see cref="CudaException"/> naming <paramref name="call"/> when <paramref name="result"/> is not CUDA_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result != Success) throw new CudaException(call, result);
    }

#pragma warning disable IDE1006 // the driver's own names, so they can be looked up in NVIDIA's documentation
    [LibraryImport(Lib)] internal static partial int cuInit(uint flags);
    [LibraryImport(Lib)] internal static partial int cuDriverGetVersion(int* version);
    [LibraryImport(Lib)] internal static partial int cuDeviceGetCount(int* count);
    [LibraryImport(Lib)] internal static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Lib)] internal static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] internal static partial int cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(Lib)] internal static partial int cuDeviceTotalMem_v2(nuint* bytes, int device);
    [LibraryImport(Lib)] internal static partial int cuDevicePrimaryCtxRetain(nint* context, int device);
    [LibraryImport(Lib)] internal static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Lib)] internal static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] internal static partial int cuCtxGetCurrent(nint* context);
    [LibraryImport(Lib)] internal static partial int cuCtxSynchronize();
    [LibraryImport(Lib)] internal static partial int cuMemAlloc_v2(nint* pointer, nuint bytes);
    [LibraryImport(Lib)] internal static partial int cuMemFree_v2(nint pointer);
    [LibraryImport(Lib)] internal static partial int cuMemGetInfo_v2(nuint* free, nuint* total);
    [LibraryImport(Lib)] internal static partial int cuMemcpyHtoDAsync_v2(nint destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Lib)] internal static partial int cuMemcpyDtoHAsync_v2(void* destination, nint source, nuint bytes, nint stream);
    [LibraryImport(Lib)] internal static partial int cuMemcpyDtoDAsync_v2(nint destination, nint source, nuint bytes, nint stream);
    [LibraryImport(Lib)] internal static partial int cuMemsetD8Async(nint destination, byte value, nuint count, nint stream);
    [LibraryImport(Lib)] internal static partial int cuMemHostAlloc(void** pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] internal static partial int cuMemFreeHost(void* pointer);
    [LibraryImport(Lib)] internal static partial int cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(Lib)] internal static partial int cuStreamDestroy_v2(nint stream);
    [LibraryImport(Lib)] internal static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(Lib)] internal static partial int cuStreamWaitEvent(nint stream, nint ev, uint flags);
    [LibraryImport(Lib)] internal static partial int cuEventCreate(nint* ev, uint flags);
    [LibraryImport(Lib)] internal static partial int cuEventRecord(nint ev, nint stream);
    [LibraryImport(Lib)] internal static partial int cuEventSynchronize(nint ev);
    [LibraryImport(Lib)] internal static partial int cuEventQuery(nint ev);
    [LibraryImport(Lib)] internal static partial int cuEventElapsedTime(float* milliseconds, nint start, nint end);
    [LibraryImport(Lib)] internal static partial int cuEventDestroy_v2(nint ev);
    [LibraryImport(Lib)] internal static partial int cuModuleLoadDataEx(nint* module, void* image, uint optionCount, int* options, void** optionValues);
    [LibraryImport(Lib)] internal static partial int cuModuleGetFunction(nint* function, nint module, byte* name);
    [LibraryImport(Lib)] internal static partial int cuModuleUnload(nint module);
    [LibraryImport(Lib)]
    internal static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, void** kernelParams, void** extra);
    [LibraryImport(Lib)] internal static partial int cuGetErrorName(int error, byte** name);
    [LibraryImport(Lib)] internal static partial int cuGetErrorString(int error, byte** description);
    [LibraryImport(Lib)] internal static partial int cuStreamBeginCapture_v2(nint stream, int mode);
    [LibraryImport(Lib)] internal static partial int cuStreamEndCapture(nint stream, nint* graph);
    [LibraryImport(Lib)] internal static partial int cuGraphInstantiateWithFlags(nint* graphExec, nint graph, ulong flags);
    [LibraryImport(Lib)] internal static partial int cuGraphLaunch(nint graphExec, nint stream);
    [LibraryImport(Lib)] internal static partial int cuGraphExecDestroy(nint graphExec);
    [LibraryImport(Lib)] internal static partial int cuGraphDestroy(nint graph);
    // CUDA 12.0 on (not in the load-time check, which holds the 11.4 floor): CudaGraph.Recapture falls back to instantiating.
    [LibraryImport(Lib)] internal static partial int cuGraphExecUpdate_v2(nint graphExec, nint graph, GraphExecUpdateResultInfo* info);

    /// <summary>CUgraphExecUpdateResultInfo.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct GraphExecUpdateResultInfo
    {
        public int Result;
        public nint ErrorNode, ErrorFromNode;
    }
#pragma warning restore IDE1006
}

/// <summary>A CUDA driver call failed: the message names the call, the error's name and the driver's description of it.</summary>
public sealed class CudaException : Exception
{
    /// <summary>
    /// An exception for <paramref name="call"/> returning <paramref name="error"/>, described by the driver, with
    /// <paramref name="detail"/> (what the call was doing) after a comma.
    /// </summary>
    public CudaException(string call, int error, string? detail = null)
        : base(Describe(call, error) + (string.IsNullOrEmpty(detail) ? "" : ", " + detail))
    {
        Call = call;
        Error = error;
    }

    /// <summary>The driver function that failed, e.g. "cuMemAlloc_v2".</summary>
    public string Call { get; }

    /// <summary>The CUresult it returned.</summary>
    public int Error { get; }

    /// <summary>True for CUDA_ERROR_OUT_OF_MEMORY (what a caller may recover from by allocating less).</summary>
    public bool IsOutOfMemory => Error == CudaApi.ErrorOutOfMemory;

    internal static string Describe(string call, int error) =>
        Format(call, error, CudaApi.ErrorName(error), CudaApi.ErrorString(error));

    /// <summary>
    /// "call failed: NAME (description)", e.g. "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)"; the
    /// number stands in for a name or description the driver does not know.
    /// </summary>
    public static string Format(string call, int error, string? name, string? description)
    {
        var what = string.IsNullOrEmpty(name) ? $"CUDA error {error}" : name;
        return string.IsNullOrEmpty(description) ? $"{call} failed: {what}" : $"{call} failed: {what} ({description})";
    }
}
