using System.Buffers.Binary;
using System.Text;
using Daop.Engine.Load;
using Daop.Engine.Load.Gguf;

namespace Daop.Tests.Load.Gguf;

/// <summary>The GGUF reader: values of every type, layout rules, and one test per kind of bad input, each failing with a
/// <see cref="ModelLoadException"/> that names the file and the key or tensor.</summary>
public sealed class GgufFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("daop-gguf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(GgufWriter w, string name = "m.gguf") => w.Write(Path.Combine(_dir, name));

    string WriteBytes(byte[] bytes, string name = "m.gguf")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    static GgufWriter Minimal() => new GgufWriter()
        .Add("general.architecture", "llama")
        .F32("a", [4], [1, 2, 3, 4])
        .F32("b", [2, 3], [1, 2, 3, 4, 5, 6]);

    ModelLoadException Fails(string path, string expected)
    {
        var e = Assert.Throws<ModelLoadException>(() => { using var _ = GgufFile.Open(path); });
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void ReadsEveryValueTypeAndTensorLayout()
    {
        var w = new GgufWriter()
            .Add("u8", (byte)200).Add("i8", (sbyte)-5).Add("u16", (ushort)60000).Add("i16", (short)-30000)
            .Add("u32", 4000000000u).Add("i32", -7).Add("f32", 1.5f).Add("bool", true).Add("str", "héllo ▁")
            .Add("u64", ulong.MaxValue).Add("i64", long.MinValue).Add("f64", 2.25)
            .Add("strings", new[] { "a", "", "ü" }).Add("ints", new[] { 1, -2, 3 }).Add("floats", new[] { 0.5f, -1f })
            .Add("bools", new[] { true, false }).Add("empty", Array.Empty<int>())
            .F32("v", [3], [1, 2, 3])
            .Tensor("q", GgmlType.Q8_0, [64, 2], new byte[2 * 2 * 34])
            .Tensor("k", GgmlType.Q4_K, [256, 1], new byte[144]);
        using var f = GgufFile.Open(Write(w));
        var m = new GgufMetadata(f.Path, f.Metadata);
        Assert.Equal(3u, f.Version);
        Assert.Equal(32u, f.Alignment);
        Assert.Equal((byte)200, f.Metadata["u8"].Data);
        Assert.Equal((sbyte)-5, f.Metadata["i8"].Data);
        Assert.Equal(60000, m.Int("u16"));
        Assert.Equal(-30000, m.Int("i16"));
        Assert.Equal(4000000000L, f.Metadata["u32"].AsInteger());
        Assert.Equal(-7, m.Int("i32"));
        Assert.Equal(1.5, m.NumberOr("f32", 0));
        Assert.True(m.BoolOr("bool", false));
        Assert.Equal("héllo ▁", m.String("str"));
        Assert.Null(f.Metadata["u64"].AsInteger()); // above 2^63 - 1
        Assert.Equal(long.MinValue, f.Metadata["i64"].AsInteger());
        Assert.Equal(2.25, m.NumberOr("f64", 0));
        Assert.Equal(["a", "", "ü"], m.StringsOrNull("strings")!);
        Assert.Equal([1, -2, 3], m.IntsOrNull("ints")!);
        Assert.Equal([0.5f, -1f], m.FloatsOrNull("floats")!);
        Assert.Equal([true, false], (bool[])f.Metadata["bools"].Data);
        Assert.Empty(m.IntsOrNull("empty")!);
        Assert.Equal(["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "u64", "i64", "f64", "strings", "ints", "floats", "bools", "empty"], f.Keys);
        var ex = Assert.Throws<ModelLoadException>(() => m.Int("u32"));
        Assert.Contains("key 'u32' is 4000000000, out of range", ex.Message, StringComparison.Ordinal);
        Assert.Contains("must be a string, found int32 -7", Assert.Throws<ModelLoadException>(() => m.String("i32")).Message, StringComparison.Ordinal);

        Assert.Equal(["v", "q", "k"], f.TensorList.Select(t => t.Name));
        var q = f.Tensors["q"];
        Assert.Equal(GgmlType.Q8_0, q.Type);
        Assert.Equal([2L, 64], q.Shape);
        Assert.Equal(136, q.ByteLength);
        Assert.Equal(68, q.RowBytes);
        Assert.Equal(0, q.Offset % 32);
        Assert.Equal(f.DataOffset + 32, q.Offset); // v's 12 bytes padded to 32
        Assert.Equal([1f, 2, 3], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f.Bytes(f.Tensors["v"])).ToArray());
        Assert.Equal("q4_K", f.Tensors["k"].Type.Name());
    }

    [Fact]
    public void HonoursAlignmentAndVersion2()
    {
        using var f = GgufFile.Open(Write(new GgufWriter { Alignment = 256, Version = 2 }.F32("a", [3], [1, 2, 3]).F32("b", [1], [7])));
        Assert.Equal(2u, f.Version);
        Assert.Equal(256u, f.Alignment);
        Assert.Equal(0, f.DataOffset % 256);
        Assert.Equal(f.DataOffset + 256, f.Tensors["b"].Offset);
        Assert.Equal(7f, BitConverter.ToSingle(f.Bytes(f.Tensors["b"])));
    }

    // Byte offsets within Minimal()'s file, found by parsing it as the reader does.
    static (byte[] Bytes, int Version, int TensorCount, int KvCount, int KeyLength, int ValueType, int StringLength, int TensorInfo) Layout()
    {
        var bytes = Minimal().ToBytes();
        int keyLen = 8, key = 24; // first key's length at 24
        int valueType = key + keyLen + "general.architecture".Length;
        int strLen = valueType + 4;
        int info = strLen + 8 + "llama".Length; // first tensor info: name length
        return (bytes, 4, 8, 16, key, valueType, strLen, info);
    }

    static byte[] With(byte[] b, int at, ulong v, int size)
    {
        var c = (byte[])b.Clone();
        if (size == 4) BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(at), (uint)v);
        else BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(at), v);
        return c;
    }

    [Fact]
    public void RefusesBadHeaders()
    {
        var (b, version, tensors, kvs, key, type, str, info) = Layout();
        Fails(WriteBytes(b[..20], "short.gguf"), "too short for a GGUF header");
        Fails(WriteBytes([.. "GGML"u8, .. b[4..]], "magic.gguf"), "not a GGUF file");
        Fails(WriteBytes(With(b, version, 1, 4), "v1.gguf"), "GGUF version 1");
        Fails(WriteBytes(With(b, version, 4, 4), "v4.gguf"), "GGUF version 4 is not supported");
        Fails(WriteBytes(With(b, version, 0x03000000, 4), "be.gguf"), "big-endian");
        Fails(WriteBytes(With(b, tensors, 1UL << 40, 8), "tensors.gguf"), "tensor count is 1099511627776; the limit is");
        Fails(WriteBytes(With(b, kvs, ulong.MaxValue, 8), "kvs.gguf"), "metadata key/value count is");
        Fails(WriteBytes(With(b, kvs, 5, 8), "kvs5.gguf"), "");
        Fails(WriteBytes(With(b, key, 5000, 8), "keylen.gguf"), "metadata key 0: a name of 5000 bytes");
        Fails(WriteBytes(With(b, key, 0, 8), "key0.gguf"), "metadata key 0: an empty name");
        Fails(WriteBytes(With(b, type, 13, 4), "type13.gguf"), "key 'general.architecture': value type 13 is not a GGUF type");
        Fails(WriteBytes(With(b, str, 1UL << 40, 8), "strlen.gguf"), "key 'general.architecture': a string of 1099511627776 bytes");
        Fails(WriteBytes(With(b, str, 1000, 8), "strpast.gguf"), "runs past the end");
        Fails(WriteBytes(b[..(info + 4)], "cut.gguf"), "runs past the end");
        var utf8 = (byte[])b.Clone();
        utf8[str + 8] = 0xFF;
        Fails(WriteBytes(utf8, "utf8.gguf"), "key 'general.architecture': not valid UTF-8");
    }

    [Fact]
    public void RefusesBadValues()
    {
        Fails(Write(new GgufWriter().Add("k", 1).Add("k", 2), "dup.gguf"), "key 'k' appears twice");
        Fails(Write(new GgufWriter().AddRaw("arr", GgufValueType.Array, Array.Empty<int>(), GgufValueType.Array), "nested.gguf"), "key 'arr': arrays of arrays are not supported");
        Fails(Write(new GgufWriter().AddRaw("arr", GgufValueType.Array, Array.Empty<int>(), (GgufValueType)77), "elem.gguf"), "key 'arr': array element type 77 is not a GGUF type");
    }

    [Fact]
    public void RefusesBadBoolsAndHugeArrays()
    {
        var b = new GgufWriter().Add("flag", true).ToBytes();
        int at = Array.LastIndexOf(b, (byte)1);
        b[at] = 2;
        Fails(WriteBytes(b, "bool.gguf"), "key 'flag': a bool must be 0 or 1, found 2");
        var a = new GgufWriter().Add("ids", new[] { 1, 2 }).ToBytes();
        int len = Encoding.UTF8.GetByteCount("ids") + 24 + 8 + 4 + 4; // key length, key, type, element type → array length
        Fails(WriteBytes(With(a, len, 1UL << 30, 8), "arr.gguf"), "key 'ids': array length is 1073741824; the limit is");
        Fails(WriteBytes(With(a, len, 1000, 8), "arr2.gguf"), "key 'ids': an array of 1000 int32 values needs at least 4000 bytes");
    }

    [Fact]
    public void RefusesBadTensorInfos()
    {
        Fails(Write(Minimal().F32("a", [1], [0]), "duptensor.gguf"), "tensor 'a' appears twice");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.F32, [1, 1, 1, 1, 1], new byte[4]), "dims.gguf"), "tensor 't': 5 dimensions; at most 4");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.F32, [-1], []), "neg.gguf"), "tensor 't': dimension 0 is 18446744073709551615");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.F32, [1L << 40, 1L << 40], []), "overflow.gguf"), "overflow a 64-bit element count");
        Fails(Write(new GgufWriter().Tensor("t", (GgmlType)31, [32], new byte[18]), "removed.gguf"), "tensor 't': ggml type 31 is not a type ggml defines");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.Q8_0, [48], new byte[51]), "block.gguf"), "tensor 't': rows of 48 elements are not a whole number of q8_0 blocks of 32");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.F32, [1L << 20], new byte[4]), "past.gguf"), "tensor 't': bytes [0, 4194304) of the data section run past its end");
        // K-quants: rows are whole super-blocks of 256 (llama.cpp's rule), and the bytes are sized from the shape
        Fails(Write(new GgufWriter().Tensor("blk.0.attn_q.weight", GgmlType.Q4_K, [96, 4], new byte[4 * 144]), "k96.gguf"),
            "tensor 'blk.0.attn_q.weight': rows of 96 elements are not a whole number of q4_K blocks of 256");
        Fails(Write(new GgufWriter().Tensor("t", GgmlType.Q6_K, [512, 2], new byte[210]), "kshort.gguf"), "tensor 't': bytes [0, 840) of the data section run past its end");
    }

    [Fact]
    public void RefusesMisplacedTensorData()
    {
        // Rewrite the offset of the second tensor ('b') of Minimal(): misaligned, overlapping, past the end.
        var b = Minimal().ToBytes();
        int at = OffsetField(b, "b");
        Fails(WriteBytes(With(b, at, 4, 8), "misaligned.gguf"), "tensor 'b': offset 4 is not a multiple of the alignment 32");
        Fails(WriteBytes(With(b, at, 0, 8), "overlap.gguf"), "tensors 'a' and 'b' overlap in the data section");
        Fails(WriteBytes(With(b, at, 1UL << 62, 8), "far.gguf"), "tensor 'b': bytes [4611686018427387904,");
        Fails(WriteBytes(new GgufWriter().Add("general.alignment", 3u).ToBytes(), "align3.gguf"), "key 'general.alignment' must be a power of two");
        Fails(WriteBytes(new GgufWriter().Add("general.alignment", "32").ToBytes(), "alignstr.gguf"), "key 'general.alignment' must be an unsigned integer, found string");
        Fails(WriteBytes(new GgufWriter().Add("general.alignment", 1u << 24).ToBytes(), "alignbig.gguf"), "key 'general.alignment' must be a power of two from 1 to 1048576");
    }

    // The byte offset of tensor <name>'s offset field: the end of its info record minus 8.
    static int OffsetField(byte[] file, string name)
    {
        var n = Encoding.UTF8.GetBytes(name);
        for (int i = 0; i + 8 + n.Length < file.Length; i++)
            if (BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(i)) == (ulong)n.Length && file.AsSpan(i + 8, n.Length).SequenceEqual(n))
            {
                int p = i + 8 + n.Length;
                uint dims = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(p));
                return p + 4 + 8 * (int)dims + 4;
            }
        throw new InvalidOperationException(name);
    }

    [Fact]
    public void MissingOrUnreadableFilesNameThePath()
    {
        string missing = Path.Combine(_dir, "none.gguf");
        Assert.Equal($"{missing}: file not found", Assert.Throws<ModelLoadException>(() => GgufFile.Open(missing)).Message);
    }
}
