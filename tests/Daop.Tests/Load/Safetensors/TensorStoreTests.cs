using System.Text;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;

namespace Daop.Tests.Load.Safetensors;

/// <summary>TensorStore: accessor errors, sharded checkpoints via index.json, the folder fallback and disposal.</summary>
public sealed class TensorStoreTests : IDisposable
{
    readonly StTempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    static ModelLoadException Bad(Action a, string prefix, params string[] fragments)
    {
        var e = Assert.Throws<ModelLoadException>(a);
        Assert.StartsWith(prefix + ": ", e.Message);
        foreach (var s in fragments) Assert.Contains(s, e.Message);
        return e;
    }

    static StTensor Ramp(string name, int n, float start = 0) =>
        StTensor.F32(name, [n], Enumerable.Range(0, n).Select(i => start + i).ToArray());

    string WriteSingle() => _tmp.Write("model.safetensors",
    [
        StTensor.Bf16("m", [3, 4], Enumerable.Repeat((ushort)0x3F80, 12).ToArray()),
        StTensor.I64("ids", [2, 3], 1, 2, 3, 4, 5, 6),
        Ramp("v", 4),
    ]);

    // --- accessors -------------------------------------------------------------------------

    [Fact]
    public void MissingTensorNamesTheTensor()
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Entry("model.layers.0.nope"), path, "missing tensor 'model.layers.0.nope'");
        Bad(() => s.Matrix("absent", 3, 4), path, "missing tensor 'absent'");
        Bad(() => s.Vector("absent", 4), path, "missing tensor 'absent'");
        Bad(() => s.Floats("absent"), path, "missing tensor 'absent'");
        Bad(() => s.Int64s("absent"), path, "missing tensor 'absent'");
    }

    [Fact]
    public void MissingTensorInFolderNamesTheFolder()
    {
        WriteSingle();
        using var s = TensorStore.OpenDirectory(_tmp.Dir);
        Bad(() => s.Entry("x.weight"), _tmp.Dir, "missing tensor 'x.weight'");
    }

    [Theory]
    [InlineData(4, 3)]
    [InlineData(3, 5)]
    [InlineData(12, 1)]
    [InlineData(0, 0)]
    [InlineData(-3, -4)]
    public void MatrixWithWrongShape(int rows, int cols)
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Matrix("m", rows, cols), path, "tensor 'm'", "has shape [3, 4]", $"expected [{rows}, {cols}]");
    }

    [Fact]
    public void MatrixOfVectorNeedsOneColumn()
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Matrix("v", 2, 2), path, "tensor 'v'", "has shape [4]", "expected [2, 2]");
        Bad(() => s.Matrix("v", 1, 4), path, "tensor 'v'", "expected [1, 4]");
    }

    [Fact]
    public void MatrixOfThreeDimTensorIsRejected()
    {
        string path = _tmp.Write("t.safetensors", [StTensor.F32("c", [2, 2, 1], 1, 2, 3, 4)]);
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Matrix("c", 2, 2), path, "tensor 'c'", "[2, 2, 1]");
    }

    [Fact]
    public void MatrixOnIntegerTensorIsUnsupported()
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Matrix("ids", 2, 3), path, "tensor 'ids'", "dtype I64", "BF16, F16 or F32");
    }

    [Theory]
    [InlineData("U8")] [InlineData("F64")] [InlineData("F8_E4M3")] [InlineData("I32")]
    public void MatrixOnOtherDTypesIsUnsupported(string dtype)
    {
        int size = dtype switch { "U8" or "F8_E4M3" => 1, "I32" => 4, _ => 8 };
        string path = _tmp.Write("t.safetensors", [new StTensor("x", dtype, [2, 2], new byte[4 * size])]);
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Matrix("x", 2, 2), path, "tensor 'x'", $"dtype {dtype}");
    }

    [Fact]
    public void VectorErrors()
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Vector("v", 5), path, "tensor 'v'", "has shape [4]", "expected [5]");
        Bad(() => s.Vector("m", 12), path, "tensor 'm'", "has shape [3, 4]", "expected [12]");
        string p2 = _tmp.Write("i.safetensors", [StTensor.I64("iv", [2], 1, 2)]);
        using var s2 = TensorStore.OpenFile(p2);
        Bad(() => s2.Vector("iv", 2), p2, "tensor 'iv'", "dtype I64", "float");
    }

    [Fact]
    public void FloatsAndInt64sCheckDType()
    {
        string path = WriteSingle();
        using var s = TensorStore.OpenFile(path);
        Bad(() => s.Floats("ids"), path, "tensor 'ids'", "dtype I64");
        Bad(() => s.Int64s("v"), path, "tensor 'v'", "dtype F32", "I64 or I32");
    }

    [Fact]
    public void BrokenFileInStoreNamesThatFile()
    {
        string path = _tmp.WriteRaw("model.safetensors", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", [0]);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), path, "tensor 'w'", "unknown dtype 'Q4'");
        Bad(() => TensorStore.OpenFile(path), path, "unknown dtype 'Q4'");
    }

    // --- sharded ----------------------------------------------------------------------------

    string Index(string weightMapJson) =>
        _tmp.WriteText("model.safetensors.index.json", $"{{\"metadata\":{{\"total_size\":48}},\"weight_map\":{weightMapJson}}}");

    void WriteShards()
    {
        _tmp.Write("model-00001-of-00002.safetensors", [Ramp("a", 4), Ramp("b", 2, 10)]);
        _tmp.Write("model-00002-of-00002.safetensors", [Ramp("c", 3, 20), StTensor.Bf16("d", [2, 2], 0x3F80, 0x4000, 0x4040, 0x4080)]);
    }

    const string GoodMap = """
        {"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",
         "c":"model-00002-of-00002.safetensors","d":"model-00002-of-00002.safetensors"}
        """;

    [Fact]
    public void ShardedHappyPath()
    {
        WriteShards();
        Index(GoodMap);
        // A stray single file next to the index must be ignored: the index wins.
        _tmp.Write("model.safetensors", [Ramp("zzz", 1)]);
        var s = TensorStore.OpenDirectory(_tmp.Dir);
        Assert.Equal(["a", "b", "c", "d"], s.Names.Order(StringComparer.Ordinal));
        Assert.Equal([0f, 1f, 2f, 3f], s.Vector("a", 4));
        Assert.Equal([10f, 11f], s.Vector("b", 2));
        Assert.Equal([20f, 21f, 22f], s.Vector("c", 3));
        Assert.Equal([1f, 2f, 3f, 4f], s.Floats("d").Data);
        var m = s.Matrix("d", 2, 2);
        Assert.Equal(Daop.Kernels.DType.BF16, m.Type);
        Assert.False(s.Contains("zzz"));

        s.Dispose();
        s.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => s.Matrix("d", 2, 2));
        // On Linux the unmapped files can be removed straight away.
        foreach (var f in Directory.GetFiles(_tmp.Dir)) File.Delete(f);
    }

    [Fact]
    public unsafe void FileDisposeIsIdempotentAndBlocksAccess()
    {
        string path = WriteSingle();
        var f = SafetensorsFile.Open(path);
        var e = f.Tensors["v"];
        Assert.True(f.DataPointer(e) != null);
        f.Dispose();
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => { _ = f.DataPointer(e); });
        Assert.Throws<ObjectDisposedException>(() => { _ = f.Bytes(e).Length; });
        File.Delete(path);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void IndexDecidesOwnerWhenShardsRepeatATensor()
    {
        // Both shards carry 'a'; the index says shard 2 owns it, so shard 1's copy is ignored.
        _tmp.Write("s1.safetensors", [Ramp("a", 2, 100), Ramp("b", 1)]);
        _tmp.Write("s2.safetensors", [Ramp("a", 2, 200)]);
        Index("""{"a":"s2.safetensors","b":"s1.safetensors"}""");
        using var s = TensorStore.OpenDirectory(_tmp.Dir);
        Assert.Equal([200f, 201f], s.Vector("a", 2));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"weight_map\":{\"a\":\"x\"}")]
    [InlineData("")]
    public void IndexNotJson(string text)
    {
        string index = _tmp.WriteText("model.safetensors.index.json", text);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "not valid JSON");
    }

    [Fact]
    public void IndexNotUtf8()
    {
        string index = _tmp.PathOf("model.safetensors.index.json");
        File.WriteAllBytes(index, Encoding.UTF8.GetBytes("{\"weight_map\":{\"").Concat(new byte[] { 0xFE }).Concat(Encoding.UTF8.GetBytes("\":\"s.safetensors\"}}")).ToArray());
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "UTF-8");
    }

    [Fact]
    public void IndexOverSizeCap()
    {
        string index = _tmp.PathOf("model.safetensors.index.json");
        // Sparse on Linux: no 100 MB actually written.
        using (var fs = File.Create(index)) fs.SetLength(SafetensorsFile.MaxHeaderBytes + 1);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "exceeds");
    }

    [Fact]
    public void IndexWithEscapedLoneSurrogate()
    {
        WriteShards();
        string index = Index("{\"a\\udc00\":\"model-00001-of-00002.safetensors\"}");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "surrogate");
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("{\"metadata\":{}}")]
    [InlineData("{\"weight_map\":[]}")]
    [InlineData("{\"weight_map\":\"s.safetensors\"}")]
    [InlineData("{\"weight_map\":null}")]
    public void IndexWithoutWeightMap(string text)
    {
        string index = _tmp.WriteText("model.safetensors.index.json", text);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "'weight_map'");
    }

    [Fact]
    public void IndexWithEmptyWeightMap()
    {
        string index = Index("{}");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "'weight_map'", "empty");
    }

    [Theory]
    [InlineData("1")]
    [InlineData("null")]
    [InlineData("[\"s.safetensors\"]")]
    public void IndexShardNameNotAString(string value)
    {
        string index = Index($"{{\"a\":{value}}}");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "weight_map['a']", "string");
    }

    [Fact]
    public void IndexListsTensorTwice()
    {
        WriteShards();
        string index = Index("""{"a":"model-00001-of-00002.safetensors","a":"model-00002-of-00002.safetensors"}""");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "weight_map", "'a'", "twice");
    }

    [Fact]
    public void IndexWithTwoWeightMaps()
    {
        WriteShards();
        string index = _tmp.WriteText("model.safetensors.index.json",
            """{"weight_map":{"a":"model-00001-of-00002.safetensors"},"weight_map":{"c":"model-00002-of-00002.safetensors"}}""");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "'weight_map'", "twice");
    }

    [Fact]
    public void ShardListedButAbsent()
    {
        WriteShards();
        string index = Index("""{"a":"model-00001-of-00002.safetensors","z":"model-00003-of-00003.safetensors"}""");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), index, "'model-00003-of-00003.safetensors'", "not present");
    }

    [Fact]
    public void TensorListedButMissingFromItsShard()
    {
        WriteShards();
        // 'c' lives in shard 2, but the index claims shard 1.
        Index("""{"a":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}""");
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), _tmp.Dir, "index lists tensor 'c'", "model-00001-of-00002.safetensors", "does not contain");
    }

    [Theory]
    [InlineData("../model.safetensors")]
    [InlineData("../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/s.safetensors")]
    [InlineData("..\\\\s.safetensors")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    public void ShardNameOutsideFolderIsRejected(string shard)
    {
        // Put a real, valid file where a traversal would land, so only the name check can stop it.
        string sub = Path.Combine(_tmp.Dir, "inner");
        Directory.CreateDirectory(sub);
        _tmp.Write("model.safetensors", [Ramp("a", 1)]);
        string index = Path.Combine(sub, "model.safetensors.index.json");
        File.WriteAllText(index, $"{{\"weight_map\":{{\"a\":\"{shard}\"}}}}");
        Bad(() => TensorStore.OpenDirectory(sub), index, "weight_map['a']");
    }

    [Fact]
    public void ShardNameWithDoubleDotInsideIsAFileName()
    {
        // "..", as part of a plain file name, does not leave the folder.
        _tmp.Write("model..v2.safetensors", [Ramp("a", 2)]);
        Index("""{"a":"model..v2.safetensors"}""");
        using var s = TensorStore.OpenDirectory(_tmp.Dir);
        Assert.Equal([0f, 1f], s.Vector("a", 2));
    }

    [Fact]
    public void BrokenShardNamesTheShard()
    {
        WriteShards();
        string bad = _tmp.WriteBytes("model-00002-of-00002.safetensors", [1, 2, 3]);
        Index(GoodMap);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), bad, "too short");
    }

    // --- folder fallback ----------------------------------------------------------------------

    [Fact]
    public void FolderFallbackReadsAllShards()
    {
        WriteShards();
        _tmp.Write("reference.safetensors", [StTensor.I64("input_ids", [1], 5)]);
        _tmp.Write("routing-sequences.safetensors", [StTensor.I64("seq", [1], 5)]);
        using var s = TensorStore.OpenDirectory(_tmp.Dir);
        Assert.Equal(["a", "b", "c", "d"], s.Names.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TensorInTwoShardsWithoutIndex()
    {
        _tmp.Write("one.safetensors", [Ramp("a", 2), Ramp("x", 1)]);
        _tmp.Write("two.safetensors", [Ramp("x", 1)]);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), _tmp.Dir, "tensor 'x'", "one.safetensors", "two.safetensors");
    }

    [Fact]
    public void FolderWithNoWeights()
    {
        _tmp.WriteText("config.json", "{}");
        _tmp.Write("reference.safetensors", [StTensor.I64("input_ids", [1], 5)]);
        Bad(() => TensorStore.OpenDirectory(_tmp.Dir), _tmp.Dir, "no model.safetensors");
    }

    [Fact]
    public void MissingFolder()
    {
        string dir = _tmp.PathOf("nowhere");
        Bad(() => TensorStore.OpenDirectory(dir), dir, "no model.safetensors");
    }
}
