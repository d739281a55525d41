using Daop.Engine.Load.Safetensors;

namespace Daop.Tests.Load.Safetensors;

public sealed class SafetensorsFixtureTests
{
    public static IEnumerable<object[]> Fixtures() => StTestPaths.FixtureNames();

    /// <summary>Every range inside the data section and no two non-empty ranges sharing a byte.</summary>
    internal static void AssertRangesSound(SafetensorsFile f, long dataLen)
    {
        foreach (var t in f.Tensors.Values)
        {
            Assert.True(t.Offset >= 0 && t.ByteLength >= 0 && t.Offset + t.ByteLength <= dataLen,
                $"{f.Path}: '{t.Name}' [{t.Offset}, {t.Offset + t.ByteLength}) outside the {dataLen}-byte data section");
            Assert.Equal(t.ElementCount * TensorDTypes.SizeOf(t.DType), t.ByteLength);
        }
        var sorted = f.Tensors.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            Assert.True(sorted[i].Offset >= sorted[i - 1].Offset + sorted[i - 1].ByteLength,
                $"{f.Path}: '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap");
    }

    /// <summary>Data section length from the file's own length prefix.</summary>
    internal static long DataLength(string path)
    {
        using var fs = File.OpenRead(path);
        Span<byte> b = stackalloc byte[8];
        fs.ReadExactly(b);
        return fs.Length - 8 - (long)BitConverter.ToUInt64(b);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void FixtureModelOpensWithEveryRangeInsideTheFile(string fixture)
    {
        string path = Path.Combine(StTestPaths.HfFixtures, fixture, "model.safetensors");
        using var f = SafetensorsFile.Open(path);
        Assert.NotEmpty(f.Tensors);
        AssertRangesSound(f, DataLength(path));
        // Touch the first and last byte of every tensor through the mapping.
        foreach (var t in f.Tensors.Values.Where(t => t.ByteLength > 0))
        {
            var b = f.Bytes(t);
            _ = b[0] ^ b[^1];
        }
        using var s = TensorStore.OpenDirectory(Path.Combine(StTestPaths.HfFixtures, fixture));
        Assert.Equal(f.Tensors.Count, s.Names.Count());
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void FixtureReferenceIsReadable(string fixture)
    {
        string path = Path.Combine(StTestPaths.HfFixtures, fixture, "reference.safetensors");
        using var s = TensorStore.OpenFile(path);
        var (ids, shape) = s.Int64s("input_ids");
        Assert.Equal(TensorDType.I64, s.Entry("input_ids").DType);
        Assert.Equal([2L, 23L], shape);
        Assert.Equal(46, ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 1_000_000));
        var (logits, lshape) = s.Floats("logits");
        Assert.Equal(3, lshape.Length);
        Assert.Equal(lshape[0] * lshape[1] * lshape[2], logits.Length);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ReferenceFilesAreSkippedInFolderFallback()
    {
        // The fixture folders hold both model.safetensors and reference.safetensors; the store must
        // read the model file and never treat the references as weights.
        using var s = TensorStore.OpenDirectory(Path.Combine(StTestPaths.HfFixtures, "mixtral-tiny"));
        Assert.False(s.Contains("input_ids"));
        Assert.True(s.Contains("lm_head.weight"));
    }

    [Fact]
    public void DefaultModelOpens()
    {
        string path = Path.Combine(StTestPaths.TinyMixtralCode, "model.safetensors");
        using (var f = SafetensorsFile.Open(path))
            AssertRangesSound(f, DataLength(path));
        using var s = TensorStore.OpenDirectory(StTestPaths.TinyMixtralCode);
        Assert.NotEmpty(s.Names);
        Assert.False(s.Contains("input_ids"));
        var e = s.Entry("lm_head.weight");
        Assert.Equal(2, e.Shape.Length);
        var m = s.Matrix("lm_head.weight", (int)e.Shape[0], (int)e.Shape[1]);
        Assert.Equal((int)e.Shape[0], m.Rows);
    }
}
