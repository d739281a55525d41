using System.Globalization;
using Daop.Engine.Load.Config;

namespace Daop.Engine.Model;

/// <summary>
/// Whether a context length can be allocated for a model: checked when the model starts, before the RoPE table and
/// (later) the KV cache are sized for it, so a context too large fails with a message instead of an overflow or an
/// out-of-memory crash mid-generation.
/// </summary>
public static class ContextLimit
{
    /// <summary>Most positions any context may hold (16 Mi): beyond every trained length, and small enough for int positions.</summary>
    public const int MaxPositions = 1 << 24;

    /// <summary>Bytes of one sequence's fp32 KV cache (K and V, or MLA's latent, of every layer) of <paramref name="positions"/> positions; long.MaxValue if that overflows.</summary>
    public static long KvCacheBytes(ModelConfig c, int positions)
    {
        try
        {
            return checked((long)c.NumLayers * positions * c.KvCacheWidth * sizeof(float));
        }
        catch (OverflowException)
        {
            return long.MaxValue;
        }
    }

    /// <summary>
    /// Throws <see cref="ArgumentOutOfRangeException"/> (parameter <c>ContextLength</c>) unless a context of
    /// <paramref name="positions"/> positions can be allocated for <paramref name="c"/>: within 1..<see cref="MaxPositions"/>,
    /// each KV-cache layer and RoPE table within one .NET array, and, when the KV cache lives in host memory
    /// (<paramref name="kvOnHost"/>), cache and tables within the memory this process may use.
    /// </summary>
    public static void Check(ModelConfig c, int positions, bool kvOnHost)
    {
        if (positions is < 1 or > MaxPositions)
            throw Error($"the context length must be in 1..{MaxPositions}, got {positions}");
        long kvDim = c.KvWidth;
        int rotary = (int)(c.Attention.RopeDim * c.Rope.PartialRotaryFactor); // as RopeTable: [positions, rotary / 2] cosines and sines
        long ropeFloats = (long)positions * (rotary / 2);
        long perLayer = kvOnHost ? (positions + 32L) * kvDim : 0; // the CPU cache pads K's rows (CpuKvCache.KStride)
        if (Math.Max(ropeFloats, perLayer) > Array.MaxLength)
            throw Error($"a context of {positions} positions needs {Math.Max(ropeFloats, perLayer)} floats in one array " +
                $"({(perLayer >= ropeFloats ? $"a KV-cache layer of {kvDim} floats per position" : "the RoPE table")}), more than a .NET array holds ({Array.MaxLength}); use a smaller context length");
        long kv = kvOnHost ? KvCacheBytes(c, positions) : 0;
        long bytes = kv == long.MaxValue ? long.MaxValue : kv + 2 * ropeFloats * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > available)
            throw Error(string.Create(CultureInfo.InvariantCulture,
                $"a context of {positions} positions needs {bytes / (double)(1L << 30):F1} GiB for the KV cache ({c.NumLayers} layers × {c.KvCacheWidth} cached floats per position) " +
                $"and RoPE tables, more than the {available / (double)(1L << 30):F1} GiB of memory this process may use; use a smaller context length"));
    }

    static ArgumentOutOfRangeException Error(string message) => new("ContextLength", message);
}
