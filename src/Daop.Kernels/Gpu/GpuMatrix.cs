using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Daop.Kernels.Quant;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A weight matrix (or a stack of equally shaped expert matrices) in device memory, in its device dtype
/// (<see cref="DeviceType"/>), as rows of 16-byte chunks: the unblocked dtypes' rows padded with zeros to whole chunks;
/// the block formats' rows (Q8_0, Q4_0, MXFP4, Q4_K) repacked into value chunks then scales (<see cref="BlockLayout"/>),
/// the same bytes as the file's blocks up to 15 bytes of padding per row. Row r of matrix e starts at chunk
/// (e·Rows + r)·<see cref="RowChunks"/>.
/// </summary>
public readonly struct GpuMatrix
{
    /// <summary>Chunks, [Count·Rows, RowChunks].</summary>
    public readonly GpuView<Chunk16> Data;
    /// <summary>Device dtype (<see cref="DeviceType"/> of the host matrix's), the one the kernels are chosen by.</summary>
    public readonly DType Type;
    /// <summary>Rows of one matrix.</summary>
    public readonly int Rows;
    /// <summary>Columns.</summary>
    public readonly int Cols;
    /// <summary>Matrices in the stack (1 for a plain matrix).</summary>
    public readonly int Count;

    /// <summary>
    /// Describes <paramref name="data"/> as <paramref name="count"/> stacked [rows, cols] matrices uploaded from host
    /// matrices of <paramref name="type"/> (held as its <see cref="DeviceType"/>).
    /// </summary>
    public GpuMatrix(GpuView<Chunk16> data, DType type, int rows, int cols, int count = 1)
    {
        Data = data; Type = DeviceType(type); Rows = rows; Cols = cols; Count = count;
        if (data.Length < (long)count * rows * RowChunks)
            throw new ArgumentException($"{data.Length} chunks cannot hold {count}x[{rows}, {cols}] {type}");
    }

    /// <summary>16-byte chunks per device row (block formats: value chunks, then scale chunks).</summary>
    public int RowChunks => ChunksPerRow(Type, Cols);

    /// <summary>Chunks of a device row holding values (the block formats' scales follow; all of them otherwise).</summary>
    public int ValueChunks => Type.IsBlock() ? BlockLayout.ValueChunks(Type, Cols) : RowChunks;

    /// <summary>Device bytes of the whole stack.</summary>
    public long Bytes => (long)Count * Rows * RowChunks * 16;

    /// <summary>
    /// The dtype a host matrix of <paramref name="host"/> takes on the device: itself where GPU kernels read it (bf16,
    /// f16, f32, Q8_0, Q4_0, MXFP4, Q4_K); Q8_0 for the other formats read from GGUF files (Q2_K, Q3_K, Q5_K, Q6_K, Q4_1,
    /// Q5_0, Q5_1, IQ4_NL), requantized row by row at upload (<see cref="Pack(in WeightMatrix, int, int, Span{Chunk16}, DType)"/>):
    /// 8.5 bits a weight on the device, an added error of at most half a Q8_0 step (1/254 of each 32-block's largest value,
    /// plus the fp16 rounding of its scale).
    /// </summary>
    public static DType DeviceType(DType host) => host.IsGgufOnly() && host != DType.Q4_K ? DType.Q8_0 : host;

    /// <summary>
    /// Whether a device matrix of <paramref name="device"/> can be made from host matrices of <paramref name="host"/>: its
    /// own <see cref="DeviceType"/>, or Q8_0 from any block format (requantized at upload, so that matrices of one role
    /// stored in different formats, as a Q4_K_M file's q4_K and q6_K down projections, share one device layout).
    /// </summary>
    public static bool CanHold(DType device, DType host) => DeviceType(host) == device || device == DType.Q8_0 && host.IsBlock();

    /// <summary>16-byte chunks per device row of <paramref name="cols"/> elements of host dtype <paramref name="type"/> (as its <see cref="DeviceType"/>).</summary>
    public static int ChunksPerRow(DType type, int cols)
    {
        type = DeviceType(type);
        return type.IsBlock() ? BlockLayout.RowChunks(type, cols) : (int)(((long)cols * type.SizeOf() + 15) / 16);
    }

    /// <summary>Chunks needed for <paramref name="count"/> matrices like <paramref name="w"/>.</summary>
    public static long ChunksFor(in WeightMatrix w, int count = 1) => (long)count * w.Rows * ChunksPerRow(w.Type, w.Cols);

    /// <summary>
    /// Writes the device image of rows [<paramref name="r0"/>, r0 + <paramref name="rows"/>) of host matrix
    /// <paramref name="w"/> into <paramref name="dst"/> (rows · <see cref="ChunksPerRow"/> chunks): rows padded with zeros,
    /// or block rows packed by <see cref="BlockLayout.PackRow"/> (requantized to Q8_0 first where <see cref="DeviceType"/>
    /// says so). Host staging images (the expert store's) are made with it.
    /// </summary>
    public static void Pack(in WeightMatrix w, int r0, int rows, Span<Chunk16> dst) => Pack(w, r0, rows, dst, DeviceType(w.Type));

    /// <summary>
    /// <see cref="Pack(in WeightMatrix, int, int, Span{Chunk16})"/> into device dtype <paramref name="device"/>
    /// (<see cref="CanHold"/>: the matrix's own device type, or Q8_0).
    /// </summary>
    public static unsafe void Pack(in WeightMatrix w, int r0, int rows, Span<Chunk16> dst, DType device)
    {
        if (!CanHold(device, w.Type)) throw new ArgumentException($"a {w.Type.Name()} matrix cannot be held as {device.Name()} on the device", nameof(device));
        int rc = ChunksPerRow(device, w.Cols);
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
                    for (int r = 0; r < rows; r++) PackRow(m, r0 + r, rc, dp + (long)r * rc * 16, device);
                else Parallel.For(0, rows, r => PackRow(m, r0 + r, rc, dp + (long)r * rc * 16, device));
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

    static unsafe void PackRow(in WeightMatrix w, int r, int rc, byte* dst, DType device)
    {
        var target = new Span<byte>(dst, rc * 16);
        if (device == w.Type)
        {
            BlockLayout.PackRow(w.Type, w.RowBytesSpan(r), w.Cols, target);
            return;
        }
        // Requantized: the row widened exactly as the CPU kernels read it, then Q8_0 by ggml's rule (load time only).
        var values = ArrayPool<float>.Shared.Rent(w.Cols);
        var q8 = ArrayPool<byte>.Shared.Rent((int)DType.Q8_0.RowBytes(w.Cols));
        try
        {
            Cpu.MatMul.WidenRow(w, r, values); // the CPU kernels' widening: vectorized, equal to BlockQuant.DequantizeRow
            BlockQuant.QuantizeQ8_0(values.AsSpan(0, w.Cols), q8);
            BlockLayout.PackRow(DType.Q8_0, q8, w.Cols, target);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(values);
            ArrayPool<byte>.Shared.Return(q8);
        }
    }

    /// <summary>
    /// Copies host matrix <paramref name="w"/> into <paramref name="dst"/> starting at chunk <paramref name="chunkOffset"/>
    /// in the device layout. Unblocked rows already a multiple of 16 bytes go in one copy; others (and every block-format
    /// matrix, repacked) through a host staging buffer of up to 16 MiB.
    /// </summary>
    public static void Upload(GpuStream stream, in WeightMatrix w, GpuView<Chunk16> dst, long chunkOffset) =>
        Upload(stream, w, dst, chunkOffset, DeviceType(w.Type));

    /// <summary><see cref="Upload(GpuStream, in WeightMatrix, GpuView{Chunk16}, long)"/> into device dtype <paramref name="device"/> (<see cref="CanHold"/>).</summary>
    public static unsafe void Upload(GpuStream stream, in WeightMatrix w, GpuView<Chunk16> dst, long chunkOffset, DType device)
    {
        if (!CanHold(device, w.Type)) throw new ArgumentException($"a {w.Type.Name()} matrix cannot be held as {device.Name()} on the device", nameof(device));
        int rc = ChunksPerRow(device, w.Cols);
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
            Pack(w, r0, n, staging, device);
            target.SubView((long)r0 * rc, (long)n * rc).CopyFromCPU(stream, ref staging[0], (long)n * rc);
        }
        stream.Synchronize();
        GC.KeepAlive(staging);
    }
}
