using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Kernels;

namespace Daop.Tests.Load.Safetensors;

/// <summary>
/// Block-format tensors in a checkpoint: U8 bytes that <see cref="TensorStore"/> reads as a block-format matrix only where
/// the config declares that format for the tensor, after checking the bytes to the byte; <see cref="SafetensorsWriter"/>'s
/// files read back as written.
/// </summary>
public unsafe class BlockTensorTests
{
    static StTensor U8(string name, long[] shape, int bytes) =>
        new(name, "U8", shape, Enumerable.Range(0, bytes).Select(i => (byte)i).ToArray());

    [Fact]
    public void DeclaredU8TensorsAreBlockMatrices()
    {
        using var d = new StTempDir();
        d.Write("model.safetensors", [U8("rows", [2, 18], 36), U8("flat", [36], 36), StTensor.Bf16("w", [1, 2], 1, 2)]);
        using var store = TensorStore.OpenDirectory(d.Dir).WithBlockFormats(n => n == "w" ? null : DType.Q4_0);
        foreach (string name in new[] { "rows", "flat" })
        {
            var m = store.Matrix(name, 2, 32);
            Assert.Equal(DType.Q4_0, m.Type);
            Assert.Equal(36, m.ByteLength);
            Assert.Equal(18, m.RowBytesSpan(1)[0]);
        }
        Assert.Equal(DType.BF16, store.Matrix("w", 1, 2).Type);
    }

    [Fact]
    public void SizesAreCheckedToTheByte()
    {
        using var d = new StTempDir();
        d.Write("model.safetensors", [U8("short", [2, 17], 34), U8("q8", [2, 34], 68), StTensor.Bf16("bf", [2, 32], new ushort[64])]);
        using var store = TensorStore.OpenDirectory(d.Dir).WithBlockFormats(_ => DType.Q4_0);
        var e = Assert.Throws<ModelLoadException>(() => store.Matrix("short", 2, 32));
        Assert.Contains("'short'", e.Message);
        Assert.Contains("[2, 17]", e.Message);
        Assert.Contains("expected U8 [2, 18]", e.Message);
        Assert.Contains("q4_0", e.Message);
        // Q8_0 bytes where the config says Q4_0: the sizes differ, so the format cannot be mistaken.
        Assert.Contains("'q8'", Assert.Throws<ModelLoadException>(() => store.Matrix("q8", 2, 32)).Message);
        var f = Assert.Throws<ModelLoadException>(() => store.Matrix("bf", 2, 32));
        Assert.Contains("has dtype BF16", f.Message);
        Assert.Contains("quantization_config", f.Message);
    }

    [Fact]
    public void UndeclaredU8IsRefused()
    {
        using var d = new StTempDir();
        d.Write("model.safetensors", [U8("q", [2, 18], 36)]);
        using var plain = TensorStore.OpenDirectory(d.Dir);
        var e = Assert.Throws<ModelLoadException>(() => plain.Matrix("q", 2, 18));
        Assert.Contains("'q' has dtype U8", e.Message);
        Assert.Contains("quantization_config", e.Message);
        using var declaredElsewhere = TensorStore.OpenDirectory(d.Dir).WithBlockFormats(n => n == "other" ? DType.Q8_0 : null);
        Assert.Contains("dtype U8", Assert.Throws<ModelLoadException>(() => declaredElsewhere.Matrix("q", 2, 18)).Message);
    }

    [Fact]
    public void WriterRoundTripsAndAlignsEachTensor()
    {
        using var d = new StTempDir();
        var odd = Enumerable.Range(0, 17).Select(i => (byte)(i * 3)).ToArray();
        var f32 = new float[] { 1.5f, -2, 3.25f };
        var tensors = new List<SafetensorsTensor>
        {
            new("odd", TensorDType.U8, [1, 17], 17, s => s.Write(odd)),
            new("h", TensorDType.BF16, [2], 4, s => s.Write([1, 2, 3, 4])),
            new("f", TensorDType.F32, [3], 12, s => s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(f32.AsSpan()))),
        };
        string path = d.PathOf("w.safetensors");
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        Assert.False(File.Exists(path + ".partial"));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(odd, file.Bytes(file.Tensors["odd"]).ToArray());
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, file.Bytes(file.Tensors["h"]).ToArray());
        using var store = TensorStore.OpenFile(path);
        Assert.Equal(f32, store.Floats("f").Data);
        // Largest elements first: every tensor starts on a multiple of its element size.
        foreach (var (name, size) in new[] { ("f", 4), ("h", 2) })
            Assert.Equal(0, (long)file.DataPointer(file.Tensors[name]) % size);

        var bad = new SafetensorsTensor("x", TensorDType.U8, [4], 4, s => s.Write([1, 2]));
        Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(d.PathOf("bad.safetensors"), [bad]));
        Assert.False(File.Exists(d.PathOf("bad.safetensors")));
        Assert.False(File.Exists(d.PathOf("bad.safetensors.partial")));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(d.PathOf("bad.safetensors"),
            [new SafetensorsTensor("x", TensorDType.F32, [3], 4, _ => { })]));
    }
}
