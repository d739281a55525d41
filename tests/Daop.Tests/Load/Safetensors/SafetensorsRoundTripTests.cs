using Daop.Engine.Load.Safetensors;
using Daop.Kernels;

namespace Daop.Tests.Load.Safetensors;

public sealed class SafetensorsRoundTripTests : IDisposable
{
    readonly StTempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    // Patterns chosen to cover the corners of each widening: signed zero, subnormals, the largest
    // finite value, infinities and a NaN, besides ordinary numbers.
    static readonly ushort[] Bf16Bits = [0x3F80, 0xC020, 0x0000, 0x8000, 0x0001, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0x3EAB, 0x4049, 0xBDCD];
    static readonly ushort[] F16Bits = [0x3C00, 0xC100, 0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x3555, 0xB266];

    static void AssertSameBits(float expected, float actual, int i) =>
        Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual) ||
                    (float.IsNaN(expected) && float.IsNaN(actual)),
            $"element {i}: expected {expected} (0x{BitConverter.SingleToInt32Bits(expected):X8}), got {actual} (0x{BitConverter.SingleToInt32Bits(actual):X8})");

    string WriteMixed() => _tmp.Write("model.safetensors",
    [
        StTensor.F32("f32.mat", [2, 3], 1f, -2f, 3.5f, float.Epsilon, -0f, 1e30f),
        StTensor.Bf16("bf16.mat", [3, 4], Bf16Bits),
        StTensor.F16("f16.mat", [4, 3], F16Bits),
        StTensor.I64("ids", [2, 2], 0, -1, long.MaxValue, 42),
        StTensor.Bf16("bf16.vec", [12], Bf16Bits),
        StTensor.F16("f16.vec", [12], F16Bits),
        StTensor.F32("f32.vec", [3], 0.25f, -8f, 1e-20f),
        new StTensor("empty", "F32", [0, 5], []),
        StTensor.F32("scalar", [], 7f),
    ], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "round trip" });

    [Fact]
    public void FileExposesEntriesMetadataAndBytes()
    {
        string path = WriteMixed();
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(path, f.Path);
        Assert.Equal(["f32.mat", "bf16.mat", "f16.mat", "ids", "bf16.vec", "f16.vec", "f32.vec", "empty", "scalar"], f.Tensors.Keys);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal("round trip", f.Metadata["note"]);

        var bf = f.Tensors["bf16.mat"];
        Assert.Equal(TensorDType.BF16, bf.DType);
        Assert.Equal([3L, 4L], bf.Shape);
        Assert.Equal(12, bf.ElementCount);
        Assert.Equal(24, bf.ByteLength);
        Assert.Equal("[3, 4]", bf.ShapeText);
        Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Bf16Bits.AsSpan()).ToArray(), f.Bytes(bf).ToArray());

        Assert.Equal(0, f.Tensors["empty"].ByteLength);
        Assert.Empty(f.Bytes(f.Tensors["empty"]).ToArray());
        Assert.Equal(1, f.Tensors["scalar"].ElementCount);
        Assert.Equal("[]", f.Tensors["scalar"].ShapeText);
    }

    [Fact]
    public void StoreReadsValuesAndShapes()
    {
        using var s = TensorStore.OpenFile(WriteMixed());
        Assert.Equal(9, s.Names.Count());
        Assert.True(s.Contains("ids"));
        Assert.False(s.Contains("nope"));

        var (f32, f32Shape) = s.Floats("f32.mat");
        Assert.Equal([2L, 3L], f32Shape);
        Assert.Equal([1f, -2f, 3.5f, float.Epsilon, -0f, 1e30f], f32);
        AssertSameBits(-0f, f32[4], 4);

        var (ids, idShape) = s.Int64s("ids");
        Assert.Equal([2L, 2L], idShape);
        Assert.Equal([0L, -1L, long.MaxValue, 42L], ids);

        var (empty, emptyShape) = s.Floats("empty");
        Assert.Empty(empty);
        Assert.Equal([0L, 5L], emptyShape);
        Assert.Equal([7f], s.Floats("scalar").Data);
    }

    [Fact]
    public void VectorWidensBf16AndF16Exactly()
    {
        using var s = TensorStore.OpenFile(WriteMixed());
        var bf = s.Vector("bf16.vec", 12);
        for (int i = 0; i < Bf16Bits.Length; i++)
            AssertSameBits(BitConverter.Int32BitsToSingle(Bf16Bits[i] << 16), bf[i], i);
        var h = s.Vector("f16.vec", 12);
        for (int i = 0; i < F16Bits.Length; i++)
            AssertSameBits((float)BitConverter.UInt16BitsToHalf(F16Bits[i]), h[i], i);
        // Spot checks independent of the conversions used above.
        Assert.Equal(1f, bf[0]);
        Assert.Equal(-2.5f, bf[1]);
        Assert.Equal(1f, h[0]);
        Assert.Equal(-2.5f, h[1]);
        Assert.Equal(65504f, h[6]);
        Assert.Equal(MathF.Pow(2, -24), h[4]);
        Assert.True(float.IsPositiveInfinity(h[7]));
        Assert.True(float.IsNaN(h[9]));

        Assert.Equal([0.25f, -8f, 1e-20f], s.Vector("f32.vec", 3));
        // Floats on a 2-D bf16 tensor widens the same way.
        var (bfm, _) = s.Floats("bf16.mat");
        for (int i = 0; i < Bf16Bits.Length; i++) AssertSameBits(bf[i], bfm[i], i);
    }

    [Fact]
    public unsafe void MatrixIsAZeroCopyViewWithDimsAndDType()
    {
        string path = WriteMixed();
        using var s = TensorStore.OpenFile(path);
        var m = s.Matrix("bf16.mat", 3, 4);
        Assert.Equal(3, m.Rows);
        Assert.Equal(4, m.Cols);
        Assert.Equal(DType.BF16, m.Type);
        Assert.Equal(24, m.ByteLength);
        for (int i = 0; i < Bf16Bits.Length; i++) Assert.Equal(Bf16Bits[i], ((ushort*)m.Data)[i]);

        var h = s.Matrix("f16.mat", 4, 3);
        Assert.Equal((4, 3, DType.F16), (h.Rows, h.Cols, h.Type));
        Assert.Equal(F16Bits[11], ((ushort*)h.Data)[11]);

        var f = s.Matrix("f32.mat", 2, 3);
        Assert.Equal((2, 3, DType.F32), (f.Rows, f.Cols, f.Type));
        Assert.Equal(3.5f, ((float*)f.Data)[2]);

        // A 1-D tensor is accepted as a one-column matrix.
        var v = s.Matrix("f32.vec", 3, 1);
        Assert.Equal((3, 1), (v.Rows, v.Cols));
        Assert.Equal(-8f, ((float*)v.Data)[1]);
    }

    [Fact]
    public void EntryReturnsHeaderEntry()
    {
        using var s = TensorStore.OpenFile(WriteMixed());
        var e = s.Entry("f16.vec");
        Assert.Equal(TensorDType.F16, e.DType);
        Assert.Equal([12L], e.Shape);
    }

    [Fact]
    public void DirectoryWithSingleModelFileOpens()
    {
        WriteMixed();
        using var s = TensorStore.OpenDirectory(_tmp.Dir);
        Assert.Equal(_tmp.Dir, s.Source);
        Assert.Equal(9, s.Names.Count());
    }

    [Theory]
    [InlineData("BOOL", 1)] [InlineData("U8", 1)] [InlineData("I8", 1)] [InlineData("F8_E4M3", 1)] [InlineData("F8_E5M2", 1)]
    [InlineData("I16", 2)] [InlineData("U16", 2)] [InlineData("F16", 2)] [InlineData("BF16", 2)]
    [InlineData("I32", 4)] [InlineData("U32", 4)] [InlineData("F32", 4)]
    [InlineData("F64", 8)] [InlineData("I64", 8)] [InlineData("U64", 8)]
    public void EveryDTypeParsesWithItsSize(string dtype, int size)
    {
        string path = _tmp.Write("d.safetensors", [new StTensor("t", dtype, [3], new byte[3 * size])]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(dtype, f.Tensors["t"].DType.ToString());
        Assert.Equal(3, f.Tensors["t"].ElementCount);
        Assert.Equal(size, TensorDTypes.SizeOf(f.Tensors["t"].DType));
    }

    [Fact]
    public void F64WidensToFloat()
    {
        double[] v = [1.5, -3.25, 1e300];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        using var s = TensorStore.OpenFile(_tmp.Write("d.safetensors", [new StTensor("t", "F64", [3], bytes)]));
        Assert.Equal([1.5f, -3.25f, float.PositiveInfinity], s.Floats("t").Data);
    }

    [Fact]
    public void I32ReadsAsInt64()
    {
        int[] v = [1, -2, int.MinValue];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        using var s = TensorStore.OpenFile(_tmp.Write("d.safetensors", [new StTensor("t", "I32", [3], bytes)]));
        Assert.Equal([1L, -2L, int.MinValue], s.Int64s("t").Data);
    }

    [Fact]
    public void HeaderPaddedWithTrailingSpacesIsAccepted()
    {
        // The reference writer pads the header with spaces to align the data section.
        var (header, data) = StTempDir.Build([StTensor.F32("a", [2], 1f, 2f)]);
        using var f = SafetensorsFile.Open(_tmp.WriteRaw("pad.safetensors", header + "       ", data));
        Assert.Equal([1f, 2f], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f.Bytes(f.Tensors["a"])).ToArray());
    }

    [Fact]
    public void EmptyHeaderObjectGivesNoTensors()
    {
        using var f = SafetensorsFile.Open(_tmp.WriteRaw("e.safetensors", "{}"));
        Assert.Empty(f.Tensors);
        Assert.Empty(f.Metadata);
    }

    [Fact]
    public void UnalignedDataOffsetsAreReadCorrectly()
    {
        // A 1-byte tensor first leaves the F32 tensor at an odd address.
        using var s = TensorStore.OpenFile(_tmp.Write("u.safetensors",
            [new StTensor("b", "U8", [1], [9]), StTensor.F32("f", [2], 1.25f, -4f), StTensor.I64("i", [1], 77)]));
        Assert.Equal(1, s.Entry("f").Offset);
        Assert.Equal([1.25f, -4f], s.Floats("f").Data);
        Assert.Equal([77L], s.Int64s("i").Data);
    }
}
