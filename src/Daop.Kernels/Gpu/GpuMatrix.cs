using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A weight matrix (or a stack of equally shaped expert matrices) in device memory, in its stored dtype,
/// each row padded with zeros to whole 16-byte chunks.
/// </summary>
public readonly struct GpuMatrix
{
    /// <summary>Chunks, [Count·Rows, RowChunks].</summary>
    public readonly ArrayView<Chunk16> Data;
    /// <summary>Stored dtype.</summary>
    public readonly DType Type;
    /// <summary>Rows of one matrix.</summary>
    public readonly int Rows;
    /// <summary>Columns.</summary>
    public readonly int Cols;
    /// <summary>Matrices in the stack (1 for a plain matrix).</summary>
    public readonly int Count;

    /// <summary>Describes <paramref name="data"/> as <paramref name="count"/> stacked [rows, cols] matrices.</summary>
    public GpuMatrix(ArrayView<Chunk16> data, DType type, int rows, int cols, int count = 1)
    {
        Data = data; Type = type; Rows = rows; Cols = cols; Count = count;
        if (data.Length < (long)count * rows * RowChunks)
            throw new ArgumentException($"{data.Length} chunks cannot hold {count}x[{rows}, {cols}] {type}");
    }

    /// <summary>16-byte chunks per padded row.</summary>
    public int RowChunks => ChunksPerRow(Type, Cols);

    /// <summary>16-byte chunks per padded row of <paramref name="cols"/> elements of <paramref name="type"/>.</summary>
    public static int ChunksPerRow(DType type, int cols) => (int)((type.RowBytes(cols) + 15) / 16);

    /// <summary>Chunks needed for <paramref name="count"/> matrices like <paramref name="w"/>.</summary>
    public static long ChunksFor(in WeightMatrix w, int count = 1) => (long)count * w.Rows * ChunksPerRow(w.Type, w.Cols);

    /// <summary>
    /// Copies host matrix <paramref name="w"/> into <paramref name="dst"/> starting at chunk <paramref name="chunkOffset"/>,
    /// padding rows to whole chunks. Rows already a multiple of 16 bytes go in one copy; others through a host staging buffer.
    /// </summary>
    public static unsafe void Upload(AcceleratorStream stream, in WeightMatrix w, ArrayView<Chunk16> dst, long chunkOffset)
    {
        int rc = ChunksPerRow(w.Type, w.Cols);
        long total = (long)w.Rows * rc;
        if (total == 0) return;
        var target = dst.SubView(chunkOffset, total);
        if (w.RowBytes == rc * 16)
        {
            target.CopyFromCPU(stream, ref Unsafe.AsRef<Chunk16>(w.Data), total);
            return;
        }
        int rowsPerBatch = Math.Max(1, (1 << 20) / rc);
        var staging = new Chunk16[Math.Min(total, (long)rowsPerBatch * rc)];
        for (int r0 = 0; r0 < w.Rows; r0 += rowsPerBatch)
        {
            int n = Math.Min(rowsPerBatch, w.Rows - r0);
            Array.Clear(staging);
            fixed (Chunk16* s = staging)
                for (int r = 0; r < n; r++)
                    Buffer.MemoryCopy(w.Data + (long)(r0 + r) * w.RowBytes, (byte*)(s + (long)r * rc), (long)rc * 16, w.RowBytes);
            target.SubView((long)r0 * rc, (long)n * rc).CopyFromCPU(stream, ref staging[0], (long)n * rc);
        }
    }
}
