using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>The K-quant descriptors and reference dequantizers against ggml's (tests/tools/kquant-references.py).</summary>
public class KQuantTests
{
    static string Fixture(string file) => Path.Combine(TestPaths.Root, "tests", "fixtures", "kquants", file);

    [Theory]
    [InlineData(DType.Q4_K, 144, 4.5)]
    [InlineData(DType.Q5_K, 176, 5.5)]
    [InlineData(DType.Q6_K, 210, 6.5625)]
    public void Descriptor(DType t, int blockBytes, double bits)
    {
        Assert.True(t.IsBlock());
        Assert.True(t.IsKQuant());
        Assert.Equal(256, t.BlockSize());
        Assert.Equal(blockBytes, t.BlockBytes());
        Assert.Equal(bits, t.BitsPerWeight());
        Assert.Equal(4096 / 256 * blockBytes, t.RowBytes(4096));
        Assert.True(DTypes.TryParse(t.Name(), out var back) && back == t);
        Assert.Throws<NotSupportedException>(() => BlockQuant.QuantizeRow(t, new float[256], new byte[blockBytes]));
    }

    /// <summary>Every weight of 48 random super-blocks (edge-case scales included) equals ggml's dequantize_row_*, bit for bit.</summary>
    [Theory]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void DequantizationEqualsGgmlBitForBit(DType t)
    {
        var blocks = File.ReadAllBytes(Fixture($"{t.Name()}.blocks"));
        var want = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Fixture($"{t.Name()}.f32"))).ToArray();
        int n = blocks.Length / t.BlockBytes() * 256;
        Assert.Equal(n, want.Length);
        var got = new float[n];
        BlockQuant.DequantizeRow(t, blocks, got);
        for (int i = 0; i < n; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(got[i]) == BitConverter.SingleToUInt32Bits(want[i]),
                $"{t.Name()} weight {i} (super-block {i / 256}, element {i % 256}): {got[i]:R}, ggml {want[i]:R}");
    }
}
