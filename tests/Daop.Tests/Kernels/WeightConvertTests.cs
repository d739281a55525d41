using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// <see cref="WeightConvert"/> against the row-by-row reference: a matrix converted on the workers holds exactly the bits of
/// <see cref="BlockQuant"/> applied to each widened row (awkward widths included), block formats widen exactly, and one
/// block format into another is refused.
/// </summary>
public unsafe class WeightConvertTests
{
    sealed class Native(long bytes) : IDisposable
    {
        public readonly byte* P = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, bytes), 64);
        public Span<byte> Span(long n) => new(P, (int)n);
        public void Dispose() => NativeMemory.AlignedFree(P);
    }

    static float[] WidenedRow(NativeWeights w, int r) => Enumerable.Range(0, w.W.Cols).Select(c => w.At(r, c)).ToArray();

    [Theory]
    [InlineData(DType.BF16, DType.Q4_0, 136)]
    [InlineData(DType.BF16, DType.Q8_0, 256)]
    [InlineData(DType.BF16, DType.MXFP4, 33)]
    [InlineData(DType.F16, DType.Q4_0, 80)]
    [InlineData(DType.F32, DType.Q8_0, 31)]
    [InlineData(DType.F32, DType.MXFP4, 4096)]
    public void BlockFormatsHoldBlockQuantBits(DType from, DType to, int cols)
    {
        const int rows = 37;
        using var w = new NativeWeights(from, rows, cols, seed: cols, scale: 0.05f);
        long rowBytes = to.RowBytes(cols);
        using var dst = new Native(rows * rowBytes);
        WeightConvert.Matrix(w.W, dst.P, to);
        var want = new byte[rowBytes];
        for (int r = 0; r < rows; r++)
        {
            BlockQuant.QuantizeRow(to, WidenedRow(w, r), want);
            Assert.True(want.AsSpan().SequenceEqual(dst.Span(rows * rowBytes).Slice((int)(r * rowBytes), (int)rowBytes)), $"row {r} of {from} → {to}");
        }
    }

    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.MXFP4)]
    public void BlockFormatsWidenExactly(DType block)
    {
        const int rows = 9, cols = 136;
        using var w = new NativeWeights(DType.BF16, rows, cols, seed: 5, scale: 0.05f);
        using var q = new Native(rows * block.RowBytes(cols));
        WeightConvert.Matrix(w.W, q.P, block);
        var qm = new WeightMatrix(q.P, block, rows, cols);
        using var f = new Native(rows * cols * 4L);
        WeightConvert.Matrix(qm, f.P, DType.F32);
        var got = MemoryMarshal.Cast<byte, float>(f.Span(rows * cols * 4L));
        var want = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            BlockQuant.DequantizeRow(block, qm.RowBytesSpan(r), want);
            Assert.True(want.AsSpan().SequenceEqual(got.Slice(r * cols, cols)), $"row {r}");
        }
    }

    [Fact]
    public void FloatTypesRoundAsTheirConverters()
    {
        const int rows = 4, cols = 50;
        using var w = new NativeWeights(DType.F32, rows, cols, seed: 3);
        using var b = new Native(rows * cols * 2L);
        WeightConvert.Matrix(w.W, b.P, DType.BF16);
        var bits = MemoryMarshal.Cast<byte, ushort>(b.Span(rows * cols * 2L));
        for (int i = 0; i < rows * cols; i++) Assert.Equal(Bf16.FromFloat(w.At(i / cols, i % cols)), bits[i]);
        using var h = new Native(rows * cols * 2L);
        WeightConvert.Matrix(w.W, h.P, DType.F16);
        var halves = MemoryMarshal.Cast<byte, Half>(h.Span(rows * cols * 2L));
        for (int i = 0; i < rows * cols; i++) Assert.Equal((Half)w.At(i / cols, i % cols), halves[i]);
        using var same = new Native(rows * cols * 4L);
        WeightConvert.Matrix(w.W, same.P, DType.F32);
        Assert.True(new ReadOnlySpan<byte>(w.W.Data, rows * cols * 4).SequenceEqual(same.Span(rows * cols * 4L)));
    }

    [Fact]
    public void OneBlockFormatIntoAnotherIsRefused()
    {
        Assert.False(WeightConvert.CanConvert(DType.Q4_0, DType.Q8_0));
        Assert.True(WeightConvert.CanConvert(DType.Q4_0, DType.Q4_0));
        Assert.True(WeightConvert.CanConvert(DType.MXFP4, DType.BF16));
        using var q = new Native(64);
        var m = new WeightMatrix(q.P, DType.Q4_0, 1, 32);
        var e = Assert.Throws<NotSupportedException>(() => WeightConvert.Matrix(m, q.P, DType.Q8_0));
        Assert.Contains("q4_0", e.Message);
        Assert.Contains("q8_0", e.Message);
    }

    /// <summary>GPU rows (slots, host images, transfers) are the stored format's row bytes padded to 16.</summary>
    [Theory]
    [InlineData(DType.Q4_0, 256, 9)]      // 8 blocks × 18 = 144 bytes
    [InlineData(DType.Q8_0, 4096, 272)]   // 128 × 34 = 4352
    [InlineData(DType.MXFP4, 136, 6)]     // 5 × 17 = 85 → 96
    [InlineData(DType.Q4_0, 80, 4)]       // 3 × 18 = 54 → 64
    [InlineData(DType.BF16, 5, 1)]
    [InlineData(DType.F32, 5, 2)]
    public void GpuRowsPadStoredFormatBytes(DType type, int cols, int chunks)
    {
        Assert.Equal(chunks, GpuMatrix.ChunksPerRow(type, cols));
        Assert.Equal((type.RowBytes(cols) + 15) / 16, GpuMatrix.ChunksPerRow(type, cols));
    }
}
