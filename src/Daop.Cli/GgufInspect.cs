using System.Globalization;
using System.Text.Json;
using Daop.Engine.Load.Gguf;

namespace Daop.Cli;

/// <summary><c>daop inspect FILE.gguf</c>'s part about the file: format, files, and per tensor class its types and bytes.</summary>
static class GgufInspect
{
    public static void WriteText(string path)
    {
        using var c = GgufCheckpoint.Open(path);
        var o = Console.Out;
        var f = c.Files[0];
        o.WriteLine($"gguf           v{f.Version}, {c.Files.Count} file{(c.Files.Count > 1 ? "s" : "")} ({Size(c.FileBytes)}), alignment {f.Alignment}, " +
            $"architecture {c.Architecture}, {c.Tensors.Count()} tensors: {string.Join(", ", GgufSummary.Types(c).Select(t => $"{t.Type} {Size(t.Bytes)}"))}");
        var classes = GgufSummary.Classes(c);
        int width = Math.Max(12, classes.Max(x => x.Name.Length));
        o.WriteLine($"  {"tensor class".PadRight(width)}  count  {"types",-16}  {"bytes",10}  bits/weight");
        foreach (var x in classes)
            o.WriteLine($"  {x.Name.PadRight(width)}  {x.Count,5}  {Types(x),-16}  {Size(x.Bytes),10}  {x.BitsPerWeight.ToString("F2", CultureInfo.InvariantCulture),11}");
    }

    public static void WriteJson(Utf8JsonWriter w, string path)
    {
        using var c = GgufCheckpoint.Open(path);
        w.WriteStartObject("gguf");
        w.WriteNumber("version", c.Files[0].Version);
        w.WriteNumber("alignment", c.Files[0].Alignment);
        w.WriteString("architecture", c.Architecture);
        w.WriteNumber("file_bytes", c.FileBytes);
        w.WriteStartArray("files");
        foreach (var f in c.Files) w.WriteStringValue(f.Path);
        w.WriteEndArray();
        w.WriteStartArray("tensor_classes");
        foreach (var x in GgufSummary.Classes(c))
        {
            w.WriteStartObject();
            w.WriteString("name", x.Name);
            w.WriteNumber("count", x.Count);
            w.WriteStartObject("types");
            foreach (var (type, n) in x.Types) w.WriteNumber(type, n);
            w.WriteEndObject();
            w.WriteNumber("elements", x.Elements);
            w.WriteNumber("bytes", x.Bytes);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static string Types(GgufTensorClass x) => string.Join(" ", x.Types.Select(t => x.Types.Count == 1 ? t.Type : $"{t.Type}x{t.Count}"));

    static string Size(long b) => b switch
    {
        >= 1L << 30 => $"{b / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{b / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{b / 1024.0:F1} KiB",
        _ => $"{b} B",
    };
}
