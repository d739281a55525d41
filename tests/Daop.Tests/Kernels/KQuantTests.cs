using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// The descriptors of the GGUF formats Daop reads but never writes (K-quants, Q4_1, Q5_0, Q5_1, IQ4_NL) and their reference
/// dequantizers against ggml's (tests/tools/kquant-references.py).
/// </summary>
public class KQuantTests
{
    static string Fixture(string file) => Path.Combine(TestPaths.Root, "tests", "fixtures", "kquants", file);

    [Theory]
    [InlineData(DType.Q2_K, 256, 84, 2.625)]
    [InlineData(DType.Q3_K, 256, 110, 3.4375)]
    [InlineData(DType.Q4_K, 256, 144, 4.5)]
    [InlineData(DType.Q5_K, 256, 176, 5.5)]
    [InlineData(DType.Q6_K, 256, 210, 6.5625)]
    [InlineData(DType.Q4_1, 32, 20, 5.0)]
    [InlineData(DType.Q5_0, 32, 22, 5.5)]
    [InlineData(DType.Q5_1, 32, 24, 6.0)]
    [InlineData(DType.IQ4_NL, 32, 18, 4.5)]
    public void Descriptor(DType t, int blockSize, int blockBytes, double bits)
    {
        Assert.True(t.IsBlock());
        Assert.True(t.IsGgufOnly());
        Assert.Equal(blockSize == 256, t.IsKQuant());
        Assert.Equal(blockSize, t.BlockSize());
        Assert.Equal(blockBytes, t.BlockBytes());
        Assert.Equal(bits, t.BitsPerWeight());
        Assert.Equal(4096 / blockSize * blockBytes, t.RowBytes(4096));
        Assert.Equal((136 + blockSize - 1) / blockSize * blockBytes, t.RowBytes(136)); // a partial last block is stored whole
        Assert.True(DTypes.TryParse(t.Name(), out var back) && back == t);
        Assert.Throws<NotSupportedException>(() => BlockQuant.QuantizeRow(t, new float[blockSize], new byte[blockBytes]));
        // On the GPU: Q4_K as stored, the others as Q8_0 (requantized at upload).
        Assert.Equal(t == DType.Q4_K ? t : DType.Q8_0, Daop.Kernels.Gpu.GpuMatrix.DeviceType(t));
    }

    /// <summary>
    /// Every weight of 12288 in random blocks (edge-case scales and mins included) equals ggml's dequantize_row_*, bit for
    /// bit, through the reference dequantizer and through the kernels' row widening.
    /// </summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    [InlineData(DType.Q4_1)]
    [InlineData(DType.Q5_0)]
    [InlineData(DType.Q5_1)]
    [InlineData(DType.IQ4_NL)]
    public unsafe void DequantizationEqualsGgmlBitForBit(DType t)
    {
        var blocks = File.ReadAllBytes(Fixture($"{t.Name()}.blocks"));
        var want = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Fixture($"{t.Name()}.f32"))).ToArray();
        int n = blocks.Length / t.BlockBytes() * t.BlockSize();
        Assert.Equal(n, want.Length);
        var got = new float[n];
        BlockQuant.DequantizeRow(t, blocks, got);
        var widened = new float[n];
        fixed (byte* p = blocks) Daop.Kernels.Cpu.MatMul.WidenRow(new WeightMatrix(p, t, 1, n), 0, widened);
        for (int i = 0; i < n; i++)
        {
            Assert.True(BitConverter.SingleToUInt32Bits(got[i]) == BitConverter.SingleToUInt32Bits(want[i]),
                $"{t.Name()} weight {i} (block {i / t.BlockSize()}, element {i % t.BlockSize()}): {got[i]:R}, ggml {want[i]:R}");
            Assert.True(BitConverter.SingleToUInt32Bits(widened[i]) == BitConverter.SingleToUInt32Bits(want[i]),
                $"{t.Name()} widened weight {i}: {widened[i]:R}, ggml {want[i]:R}");
        }
    }
}
