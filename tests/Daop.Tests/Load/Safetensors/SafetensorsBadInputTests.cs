using System.Text;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;

namespace Daop.Tests.Load.Safetensors;

/// <summary>Every defect in a single file must surface as a <see cref="ModelLoadException"/> naming the file and the defect.</summary>
public sealed class SafetensorsBadInputTests : IDisposable
{
    readonly StTempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    /// <summary>Opens <paramref name="path"/>, expecting a load error that starts with the path and contains every fragment.</summary>
    static ModelLoadException Bad(string path, params string[] fragments)
    {
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        foreach (var s in fragments) Assert.Contains(s, e.Message);
        return e;
    }

    string Header(string json, byte[]? data = null) => _tmp.WriteRaw("bad.safetensors", json, data);

    /// <summary>A one-tensor header with the given raw JSON for each field, and 12 data bytes.</summary>
    string One(string dtype = "\"F32\"", string shape = "[3]", string offsets = "[0, 12]") =>
        Header($$$"""{"w":{"dtype":{{{dtype}}},"shape":{{{shape}}},"data_offsets":{{{offsets}}}}}""", new byte[12]);

    [Fact]
    public void MissingFile() => Bad(_tmp.PathOf("absent.safetensors"), "not found");

    [Fact]
    public void DirectoryInsteadOfFile()
    {
        Directory.CreateDirectory(_tmp.PathOf("dir.safetensors"));
        Bad(_tmp.PathOf("dir.safetensors"), "not found");
    }

    [Fact]
    public void EmptyFile() => Bad(_tmp.WriteBytes("e.safetensors", []), "0 bytes", "too short");

    [Theory]
    [InlineData(1)] [InlineData(7)]
    public void FileShorterThanLengthPrefix(int n) => Bad(_tmp.WriteBytes("s.safetensors", new byte[n]), $"{n} bytes", "too short");

    [Fact]
    public void HeaderLengthPastEndOfFile() =>
        Bad(_tmp.WriteRaw("h.safetensors", Encoding.UTF8.GetBytes("{}"), lengthPrefix: 1000), "header length 1000", "past the end", "10-byte");

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(0x8000_0000_0000_0000UL)]
    [InlineData(ulong.MaxValue)]
    public void HeaderLengthOverCap(ulong len) =>
        Bad(_tmp.WriteRaw("h.safetensors", Encoding.UTF8.GetBytes("{}"), lengthPrefix: len), $"header length {len}", "exceeds", "100000000");

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("{\"a\":")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},}")] // trailing comma
    [InlineData("{/* c */}")]
    [InlineData("{} {}")]
    [InlineData("{}\0\0")] // NUL padding is not whitespace
    [InlineData("{'w':1}")]
    public void HeaderNotJson(string header) => Bad(Header(header), "header is not valid JSON");

    [Fact]
    public void HeaderNestedTooDeep() =>
        Bad(Header("{\"w\":" + new string('[', 100) + new string(']', 100) + "}"), "not valid JSON");

    [Theory]
    [InlineData("[]", "Array")]
    [InlineData("42", "Number")]
    [InlineData("null", "Null")]
    [InlineData("\"s\"", "String")]
    [InlineData("true", "True")]
    public void HeaderNotAnObject(string header, string kind) => Bad(Header(header), "header must be a JSON object", kind);

    [Theory]
    [InlineData("5")]
    [InlineData("[]")]
    [InlineData("null")]
    public void EntryNotAnObject(string entry) => Bad(Header($"{{\"w\":{entry}}}"), "tensor 'w'", "must be an object");

    [Theory]
    [InlineData("{\"shape\":[3],\"data_offsets\":[0,12]}", "'dtype'")]
    [InlineData("{\"dtype\":\"F32\",\"data_offsets\":[0,12]}", "'shape'")]
    [InlineData("{\"dtype\":\"F32\",\"shape\":[3]}", "'data_offsets'")]
    [InlineData("{}", "'dtype'")]
    public void EntryMissingField(string entry, string field) =>
        Bad(Header($"{{\"w\":{entry}}}", new byte[12]), "tensor 'w'", "missing", field);

    [Theory]
    [InlineData("5")]
    [InlineData("null")]
    [InlineData("[\"F32\"]")]
    public void DTypeNotAString(string dtype) => Bad(One(dtype: dtype), "tensor 'w'", "'dtype'", "string");

    [Theory]
    [InlineData("Q4")]
    [InlineData("f32")]
    [InlineData("")]
    [InlineData(" F32")]
    [InlineData("F32 ")]
    [InlineData("1")]
    [InlineData("+9")]
    [InlineData("BOOL, U8")] // Enum.TryParse would read this as the flag combination U8
    [InlineData("I8,BOOL")]
    [InlineData("1,1")]
    [InlineData("F8_E4M3FN")]
    public void UnknownDType(string dtype) =>
        Bad(One(dtype: "\"" + dtype + "\"", offsets: "[0, 3]"), "tensor 'w'", $"unknown dtype '{dtype}'");

    [Theory]
    [InlineData("3")]
    [InlineData("null")]
    [InlineData("{}")]
    [InlineData("\"[3]\"")]
    public void ShapeNotAnArray(string shape) => Bad(One(shape: shape), "tensor 'w'", "'shape'", "array");

    [Theory]
    [InlineData("[-1]", "shape[0]", "-1")]
    [InlineData("[3, -2]", "shape[1]", "-2")]
    [InlineData("[-0]", "shape[0]", "-0")]
    [InlineData("[2.5]", "shape[0]", "2.5")]
    [InlineData("[3.0]", "shape[0]", "3.0")]
    [InlineData("[3e0]", "shape[0]", "3e0")]
    [InlineData("[1e3]", "shape[0]", "1e3")]
    [InlineData("[\"3\"]", "shape[0]", "\"3\"")]
    [InlineData("[null]", "shape[0]", "null")]
    [InlineData("[[3]]", "shape[0]", "[3]")]
    [InlineData("[99999999999999999999]", "shape[0]", "99999999999999999999")]
    [InlineData("[9223372036854775808]", "shape[0]", "9223372036854775808")]
    public void ShapeDimNotANonNegativeInteger(string shape, string where, string raw) =>
        Bad(One(shape: shape), "tensor 'w'", where, "non-negative integer", raw);

    [Theory]
    [InlineData("[4294967296, 4294967296]")]
    [InlineData("[9223372036854775807, 2]")]
    [InlineData("[3037000500, 3037000500]")]
    public void ShapeElementCountOverflows(string shape) => Bad(One(shape: shape), "tensor 'w'", "overflow");

    [Fact]
    public void ShapeByteSizeOverflows() =>
        // 2^61 elements fit a long, 2^61 * 4 bytes do not.
        Bad(One(shape: "[2305843009213693952]"), "tensor 'w'", "overflow");

    [Theory]
    [InlineData("3")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("[0]")]
    [InlineData("[0, 12, 24]")]
    [InlineData("{\"begin\":0,\"end\":12}")]
    public void DataOffsetsNotAPair(string offsets) => Bad(One(offsets: offsets), "tensor 'w'", "'data_offsets'", "[begin, end]");

    [Theory]
    [InlineData("[-1, 11]", "begin", "-1")]
    [InlineData("[0, -12]", "end", "-12")]
    [InlineData("[0.0, 12]", "begin", "0.0")]
    [InlineData("[0, 12.0]", "end", "12.0")]
    [InlineData("[0, 1.2e1]", "end", "1.2e1")]
    [InlineData("[0, 12e0]", "end", "12e0")]
    [InlineData("[\"0\", 12]", "begin", "\"0\"")]
    [InlineData("[0, null]", "end", "null")]
    [InlineData("[-0, 12]", "begin", "-0")]
    [InlineData("[0, 99999999999999999999]", "end", "99999999999999999999")]
    public void DataOffsetNotANonNegativeInteger(string offsets, string which, string raw) =>
        Bad(One(offsets: offsets), "tensor 'w'", $"data_offsets {which}", "non-negative integer", raw);

    [Fact]
    public void DataOffsetsEndBeforeBegin() => Bad(One(offsets: "[12, 0]"), "tensor 'w'", "end 0 is before begin 12");

    [Theory]
    [InlineData("[0, 8]", "hold 8 bytes", "needs 12")]
    [InlineData("[0, 16]", "hold 16 bytes", "needs 12")]
    [InlineData("[4, 4]", "hold 0 bytes", "needs 12")]
    public void DataOffsetsDisagreeWithShape(string offsets, string held, string needed) =>
        Bad(One(offsets: offsets), "tensor 'w'", held, "shape [3] of F32", needed);

    [Theory]
    [InlineData("[4, 16]", "end 16")]
    [InlineData("[12, 24]", "end 24")]
    [InlineData("[9223372036854775795, 9223372036854775807]", "end 9223372036854775807")]
    public void DataOffsetsPastDataSection(string offsets, string end) =>
        Bad(One(offsets: offsets), "tensor 'w'", end, "past the 12-byte data section");

    [Fact]
    public void TruncatedDataSection()
    {
        var (header, data) = StTempDir.Build([StTensor.F32("a", [4], 1, 2, 3, 4)]);
        Bad(_tmp.WriteRaw("t.safetensors", header, data[..15]), "tensor 'a'", "past the 15-byte data section");
    }

    [Fact]
    public void TensorsOverlap() =>
        Bad(Header("""
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
             "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, new byte[12]), "'a'", "'b'", "overlap");

    [Fact]
    public void TensorContainedInAnotherOverlaps() =>
        Bad(Header("""
            {"big":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},
             "small":{"dtype":"U8","shape":[2],"data_offsets":[5,7]},
             "late":{"dtype":"U8","shape":[1],"data_offsets":[11,12]}}
            """, new byte[12]), "'big'", "'small'", "overlap");

    [Fact]
    public void IdenticalRangesOverlap() =>
        Bad(Header("""
            {"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},
             "b":{"dtype":"I32","shape":[3],"data_offsets":[0,12]}}
            """, new byte[12]), "overlap");

    [Fact]
    public void EmptyTensorsMayShareAnOffset()
    {
        // Zero-byte tensors own no bytes, so they cannot overlap anything.
        using var f = SafetensorsFile.Open(Header("""
            {"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},
             "e1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},
             "e2":{"dtype":"BF16","shape":[2,0],"data_offsets":[12,12]}}
            """, new byte[12]));
        Assert.Equal(3, f.Tensors.Count);
    }

    [Fact]
    public void DuplicateTensorName() =>
        // JsonDocument keeps both properties; the reader must notice rather than silently take one.
        Bad(Header("""
            {"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
             "w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}
            """, new byte[8]), "tensor 'w'", "twice");

    [Fact]
    public void DuplicateFieldInEntry() =>
        Bad(Header("""{"w":{"dtype":"F32","dtype":"I32","shape":[3],"data_offsets":[0,12]}}""", new byte[12]),
            "tensor 'w'", "'dtype'", "twice");

    [Fact]
    public void DuplicateMetadataObject() =>
        Bad(Header("""{"__metadata__":{"a":"1"},"__metadata__":{"b":"2"}}"""), "__metadata__", "twice");

    [Fact]
    public void DuplicateMetadataKey() =>
        Bad(Header("""{"__metadata__":{"format":"pt","format":"np"}}"""), "__metadata__", "'format'", "twice");

    [Theory]
    [InlineData("\"pt\"")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("5")]
    public void MetadataNotAnObject(string meta) => Bad(Header($"{{\"__metadata__\":{meta}}}"), "__metadata__", "object of strings");

    [Theory]
    [InlineData("1")]
    [InlineData("null")]
    [InlineData("{}")]
    [InlineData("[\"pt\"]")]
    [InlineData("true")]
    public void MetadataValueNotAString(string value) =>
        Bad(Header($"{{\"__metadata__\":{{\"format\":{value}}}}}"), "__metadata__", "format", "must be a string");

    [Fact]
    public void MetadataValuesMayBeEmptyOrEscaped()
    {
        using var f = SafetensorsFile.Open(Header("""{"__metadata__":{"":"","q":"a\"b\u00e9\n"}}"""));
        Assert.Equal("", f.Metadata[""]);
        Assert.Equal("a\"b\u00e9\n", f.Metadata["q"]);
    }

    public static IEnumerable<object[]> NonUtf8Headers() =>
    [
        [new byte[] { (byte)'{', (byte)'"', 0xFF, (byte)'"', (byte)':', (byte)'{', (byte)'}', (byte)'}' }],  // tensor name
        [Encoding.UTF8.GetBytes("{\"__metadata__\":{\"k\":\"").Concat(new byte[] { 0xC3, 0x28 }).Concat(Encoding.UTF8.GetBytes("\"}}")).ToArray()], // metadata value
        [Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F").Concat(new byte[] { 0xED, 0xA0, 0x80 }).Concat(Encoding.UTF8.GetBytes("\"}}")).ToArray()], // surrogate in dtype
        [Encoding.UTF8.GetBytes("{\"__metadata__\":{\"").Concat(new byte[] { 0xF0, 0x9F, 0x98 }).Concat(Encoding.UTF8.GetBytes("\":\"v\"}}")).ToArray()], // truncated sequence in a key
        [new byte[] { (byte)'{', (byte)'}', 0x80 }], // stray continuation byte after the object
    ];

    [Theory]
    [MemberData(nameof(NonUtf8Headers))]
    public void HeaderNotUtf8(byte[] header) =>
        Bad(_tmp.WriteRaw("u.safetensors", header, new byte[4]), "UTF-8");

    [Theory]
    [InlineData("{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}")]
    [InlineData("{\"__metadata__\":{\"k\":\"\\udc00x\"}}")]
    [InlineData("{\"__metadata__\":{\"\\ud83d\\u0041\":\"v\"}}")]
    [InlineData("{\"w\":{\"dtype\":\"F32\\ud800\",\"shape\":[1],\"data_offsets\":[0,4]}}")]
    public void EscapedLoneSurrogate(string header) =>
        // Valid UTF-8 bytes, but the escapes decode to half a UTF-16 pair.
        Bad(Header(header, new byte[4]), "surrogate");

    [Fact]
    public void NonAsciiUtf8NamesAreFine()
    {
        using var f = SafetensorsFile.Open(Header("""{"gewicht.\u00fc\ud83d\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", [7]));
        Assert.Equal([7], f.Bytes(f.Tensors["gewicht.\u00fc\U0001F600"]).ToArray());
    }

    [Fact]
    public void UnknownEntryFieldsAreIgnored()
    {
        // The format leaves room for extra fields; only the three known ones are checked.
        using var f = SafetensorsFile.Open(One(dtype: "\"F32\",\"extra\":{\"x\":[1,2]}"));
        Assert.Equal(12, f.Tensors["w"].ByteLength);
    }
}
