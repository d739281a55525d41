using Daop.Engine.Device.Gpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Gpu;

/// <summary>
/// The device layout of the block formats (<see cref="BlockLayout"/>): packing keeps every value exactly (the host twin
/// of the kernels' decoding equals <see cref="BlockQuant.Element"/>), rows take the file's bytes up to 15 bytes of
/// padding, and the slot pool's expert layout sizes quantized experts accordingly.
/// </summary>
public class BlockLayoutTests
{
    public static TheoryData<DType, int> Shapes()
    {
        var data = new TheoryData<DType, int>();
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.MXFP4 })
            foreach (int cols in new[] { 1, 32, 40, 256, 296, 600, 2880 })
                data.Add(t, cols);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void PackingKeepsEveryValue(DType type, int cols)
    {
        using var w = new BlockWeights(type, 3, cols, seed: cols, scale: 0.3f);
        int rc = GpuMatrix.ChunksPerRow(type, cols);
        var packed = new Chunk16[3 * rc];
        GpuMatrix.Pack(w.W, 0, 3, packed);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(packed.AsSpan());
        for (int r = 0; r < 3; r++)
        {
            var row = bytes.Slice(r * rc * 16, rc * 16);
            var src = w.W.RowBytesSpan(r);
            for (int c = 0; c < cols; c++)
            {
                float want = BlockQuant.Element(type, src.Slice(c / 32 * type.BlockBytes(), type.BlockBytes()), c % 32);
                Assert.Equal(want, BlockLayout.Element(type, row, cols, c));
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0, 4096, 4352)]
    [InlineData(DType.Q4_0, 4096, 2304)]
    [InlineData(DType.MXFP4, 4096, 2176)]
    [InlineData(DType.Q4_0, 14336, 8064)]
    [InlineData(DType.MXFP4, 2880, 1536)]   // 90 blocks: 1530 bytes in the file, scales padded to a chunk
    [InlineData(DType.Q8_0, 40, 80)]        // 2 blocks: 64 bytes of values, 4 of scales padded to 16
    [InlineData(DType.Q4_K, 4096, 2304)]    // 16 super-blocks of 144 bytes: the file's bytes exactly
    [InlineData(DType.Q4_K, 14336, 8064)]
    public void RowsTakeTheFilesBytesPlusScalePadding(DType type, int cols, int deviceBytes)
    {
        Assert.Equal(deviceBytes, GpuMatrix.ChunksPerRow(type, cols) * 16);
        Assert.InRange(deviceBytes - type.RowBytes(cols), 0, 15);
    }

    /// <summary>
    /// The vector packing (whole groups through registers and a half-word transpose) writes the scalar twin's bytes,
    /// for every code byte and for rows that end in a partial group; Q8_0 and the partial groups take the scalar path in both.
    /// </summary>
    [Theory]
    [InlineData(DType.Q4_0, 256)]
    [InlineData(DType.Q4_0, 2880)]   // 11 groups and 2 blocks
    [InlineData(DType.Q4_0, 40)]
    [InlineData(DType.MXFP4, 4096)]
    [InlineData(DType.MXFP4, 296)]
    [InlineData(DType.Q8_0, 600)]
    [InlineData(DType.Q4_K, 256)]
    [InlineData(DType.Q4_K, 14336)]
    public void VectorPackingWritesTheScalarTwinsBytes(DType type, int cols)
    {
        int blocks = (cols + type.BlockSize() - 1) / type.BlockSize(), bb = type.BlockBytes();
        var src = new byte[blocks * bb];
        new Random(cols).NextBytes(src);
        for (int i = 0; i < src.Length; i++) src[i] = (byte)(i % 3 == 0 ? i * 7 : src[i]); // every byte value in the codes
        for (int b = 0; b < blocks; b++)
            if (type == DType.MXFP4) src[b * bb] = (byte)(100 + b % 40); // scales the device range holds
            else src[b * bb + 1] &= 0x3B;                                // fp16 scales (Q4_K: d) finite
        int rowBytes = GpuMatrix.ChunksPerRow(type, cols) * 16;
        var vector = new byte[rowBytes];
        var scalar = new byte[rowBytes];
        vector.AsSpan().Fill(0xA5);
        scalar.AsSpan().Fill(0x5A);
        BlockLayout.PackRow(type, src, cols, vector);
        BlockLayout.PackRowScalar(type, src, cols, scalar);
        Assert.Equal(scalar, vector);
    }

    /// <summary>Q4_K rows keep every value exactly: the kernels' decoding (scale and min per 32-block from the header) equals the reference dequantizer.</summary>
    [Theory]
    [InlineData(256)]
    [InlineData(512)]
    [InlineData(2048)]
    public void Q4KPackingKeepsEveryValue(int cols)
    {
        using var w = Kernels.KQuantMatMulTests.Random(DType.Q4_K, 3, cols, seed: cols);
        int rc = GpuMatrix.ChunksPerRow(DType.Q4_K, cols);
        var packed = new Chunk16[3 * rc];
        GpuMatrix.Pack(w.W, 0, 3, packed);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(packed.AsSpan());
        var want = w.Dequantized();
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < cols; c++)
                Assert.Equal(want[r * cols + c], BlockLayout.Element(DType.Q4_K, bytes.Slice(r * rc * 16, rc * 16), cols, c));
    }

    /// <summary>
    /// The GGUF formats without GPU kernels of their own go to the device as Q8_0: each value within half a Q8_0 step
    /// (1/254 of its 32-block's largest magnitude, plus the fp16 scale's rounding) of the file's; the device row is Q8_0's size.
    /// </summary>
    [Theory]
    [InlineData(DType.Q6_K, 512)]
    [InlineData(DType.Q5_K, 256)]
    [InlineData(DType.Q3_K, 256)]
    [InlineData(DType.Q2_K, 512)]
    [InlineData(DType.Q5_0, 296)]
    [InlineData(DType.Q4_1, 64)]
    [InlineData(DType.Q5_1, 96)]
    [InlineData(DType.IQ4_NL, 40)]
    public void OtherGgufFormatsAreRequantizedToQ8(DType type, int cols)
    {
        Assert.Equal(DType.Q8_0, GpuMatrix.DeviceType(type));
        using var w = type.IsKQuant() ? Kernels.KQuantMatMulTests.Random(type, 3, cols, seed: cols) : new Kernels.BlockWeights(type, 3, cols, seed: cols, scale: 0.3f);
        int rc = GpuMatrix.ChunksPerRow(type, cols);
        Assert.Equal(GpuMatrix.ChunksPerRow(DType.Q8_0, cols), rc);
        var packed = new Chunk16[3 * rc];
        GpuMatrix.Pack(w.W, 0, 3, packed);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(packed.AsSpan());
        var want = w.Dequantized();
        for (int r = 0; r < 3; r++)
            for (int b = 0; b * 32 < cols; b++)
            {
                float amax = 0;
                for (int c = 32 * b; c < Math.Min(cols, 32 * b + 32); c++) amax = Math.Max(amax, Math.Abs(want[r * cols + c]));
                for (int c = 32 * b; c < Math.Min(cols, 32 * b + 32); c++)
                {
                    float got = BlockLayout.Element(DType.Q8_0, bytes.Slice(r * rc * 16, rc * 16), cols, c);
                    // Half a step of d = amax/127, plus 127 codes times the fp16 rounding of d (relative 2^-11, or half
                    // the subnormal step 2^-24).
                    float bound = amax * (1f / 254 + 1f / 2048) * 1.001f + 127 * MathF.Pow(2, -25);
                    Assert.True(Math.Abs(got - want[r * cols + c]) <= bound,
                        $"{type} row {r} col {c}: {got} vs {want[r * cols + c]} (block max {amax})");
                }
            }
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.F32)]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    [InlineData(DType.Q4_K)]
    public void FormatsWithGpuKernelsKeepTheirType(DType type) => Assert.Equal(type, GpuMatrix.DeviceType(type));

    [Fact]
    public void MixtralQ4ExpertTakesAboutAThirdAndAHalfOfBf16sBytes()
    {
        var bf16 = new ExpertLayout(DType.BF16, DType.BF16, DType.BF16, 4096, 14336);
        var q4 = new ExpertLayout(DType.Q4_0, DType.Q4_0, DType.Q4_0, 4096, 14336);
        var q8 = new ExpertLayout(DType.Q8_0, DType.Q8_0, DType.Q8_0, 4096, 14336);
        var mx = new ExpertLayout(DType.MXFP4, DType.MXFP4, DType.MXFP4, 4096, 14336);
        Assert.Equal(3L * 4096 * 14336 * 2, bf16.ExpertBytes);
        Assert.Equal(3L * 4096 * 14336 / 32 * 18, q4.ExpertBytes);   // exactly the GGUF tensors' bytes
        Assert.Equal(3L * 4096 * 14336 / 32 * 34, q8.ExpertBytes);
        Assert.Equal(3L * 4096 * 14336 / 32 * 17, mx.ExpertBytes);
        Assert.Equal(32.0 / 9, (double)bf16.ExpertBytes / q4.ExpertBytes, 6);
    }

    [Fact]
    public void Mxfp4ScalesAboveTheDeviceRangeAreRefused()
    {
        var src = new byte[17];
        src[0] = 241;
        var dst = new byte[BlockLayout.RowChunks(DType.MXFP4, 32) * 16];
        Assert.Throws<NotSupportedException>(() => BlockLayout.PackRow(DType.MXFP4, src, 32, dst));
        src[0] = 240;
        BlockLayout.PackRow(DType.MXFP4, src, 32, dst);
    }
}
