using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A weight matrix (or a stack of equally shaped expert matrices) in device memory, in its stored dtype, as rows of
/// 16-byte chunks: the unblocked dtypes' rows padded with zeros to whole chunks; the block formats' rows (Q8_0, Q4_0,
/// MXFP4) repacked into value chunks then scales (<see cref="BlockLayout"/>), the same bytes as the file's blocks up to
/// 15 bytes of padding per row. Row r of matrix e starts at chunk (e·Rows + r)·<see cref="RowChunks"/>.
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

    /// <summary>16-byte chunks per device row (block formats: value chunks, then scale chunks).</summary>
    public int RowChunks => ChunksPerRow(Type, Cols);

    /// <summary>Chunks of a device row holding values (the block formats' scales follow; all of them otherwise).</summary>
    public int ValueChunks => Type.IsBlock() ? BlockLayout.ValueChunks(Type, Cols) : RowChunks;

    /// <summary>Device bytes of the whole stack.</summary>
    public long Bytes => (long)Count * Rows * RowChunks * 16;

    /// <summary>16-byte chunks per device row of <paramref name="cols"/> elements of <paramref name="type"/>.</summary>
    /// <exception cref="NotSupportedException">A K-quant, Q4_1, Q5_0 or Q5_1 (<see cref="DTypes.IsGgufOnly"/>): every GPU
    /// sizing and upload passes here, so such a model on the GPU stops with this message before any device memory is taken.</exception>
    public static int ChunksPerRow(DType type, int cols) =>
        type.IsGgufOnly() ? throw new NotSupportedException($"GPU kernels for {type.Name()} are not built yet; run with --device cpu")
        : type.IsBlock() ? BlockLayout.RowChunks(type, cols) : (int)(((long)cols * type.SizeOf() + 15) / 16);

    /// <summary>Chunks needed for <paramref name="count"/> matrices like <paramref name="w"/>.</summary>
    public static long ChunksFor(in WeightMatrix w, int count = 1) => (long)count * w.Rows * ChunksPerRow(w.Type, w.Cols);

    /// <summary>
    /// Writes the device image of rows [<paramref name="r0"/>, r0 + <paramref name="rows"/>) of host matrix
    /// <paramref name="w"/> into <paramref name="dst"/> (rows · <see cref="ChunksPerRow"/> chunks): rows padded with zeros,
    /// or block rows packed by <see cref="BlockLayout.PackRow"/>. Host staging images (the expert store's) are made with it.
    /// </summary>
    public static unsafe void Pack(in WeightMatrix w, int r0, int rows, Span<Chunk16> dst)
    {
        int rc = ChunksPerRow(w.Type, w.Cols);
        if (dst.Length < (long)rows * rc) throw new ArgumentException($"dst holds {dst.Length} chunks, {rows} rows need {(long)rows * rc}", nameof(dst));
        var bytes = MemoryMarshal.AsBytes(dst);
        if (w.Type.IsBlock())
        {
            var m = w;
            fixed (byte* d = bytes)
            {
                byte* dp = d;
                // Rows in parallel past a million weights (a Mixtral expert matrix packs in ~10 ms on 16 cores).
                if ((long)rows * w.Cols < 1 << 20)
                    for (int r = 0; r < rows; r++) PackRow(m, r0 + r, rc, dp + (long)r * rc * 16);
                else Parallel.For(0, rows, r => PackRow(m, r0 + r, rc, dp + (long)r * rc * 16));
            }
            return;
        }
        if (w.RowBytes == rc * 16)
        {
            new ReadOnlySpan<byte>(w.Data + (long)r0 * w.RowBytes, rows * w.RowBytes).CopyTo(bytes);
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            var row = bytes.Slice(r * rc * 16, rc * 16);
            w.RowBytesSpan(r0 + r).CopyTo(row);
            row[w.RowBytes..].Clear();
        }
    }

    static unsafe void PackRow(in WeightMatrix w, int r, int rc, byte* dst) =>
        BlockLayout.PackRow(w.Type, w.RowBytesSpan(r), w.Cols, new Span<byte>(dst, rc * 16));

    /// <summary>
    /// Copies host matrix <paramref name="w"/> into <paramref name="dst"/> starting at chunk <paramref name="chunkOffset"/>
    /// in the device layout. Unblocked rows already a multiple of 16 bytes go in one copy; others (and every block-format
    /// matrix, repacked) through a host staging buffer of up to 16 MiB.
    /// </summary>
    public static unsafe void Upload(AcceleratorStream stream, in WeightMatrix w, ArrayView<Chunk16> dst, long chunkOffset)
    {
        int rc = ChunksPerRow(w.Type, w.Cols);
        long total = (long)w.Rows * rc;
        if (total == 0) return;
        var target = dst.SubView(chunkOffset, total);
        if (!w.Type.IsBlock() && w.RowBytes == rc * 16)
        {
            target.CopyFromCPU(stream, ref Unsafe.AsRef<Chunk16>(w.Data), total);
            return;
        }
        int rowsPerBatch = Math.Max(1, (1 << 20) / rc);
        // Pinned, and kept until the stream has finished with it: a copy must never read a moved or collected array.
        var staging = GC.AllocateUninitializedArray<Chunk16>((int)Math.Min(total, (long)rowsPerBatch * rc), pinned: true);
        for (int r0 = 0; r0 < w.Rows; r0 += rowsPerBatch)
        {
            int n = Math.Min(rowsPerBatch, w.Rows - r0);
            stream.Synchronize();
            Pack(w, r0, n, staging);
            target.SubView((long)r0 * rc, (long)n * rc).CopyFromCPU(stream, ref staging[0], (long)n * rc);
        }
        stream.Synchronize();
        GC.KeepAlive(staging);
    }
}
