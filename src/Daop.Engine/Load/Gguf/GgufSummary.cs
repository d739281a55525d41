using System.Text.RegularExpressions;

namespace Daop.Engine.Load.Gguf;

/// <summary>One class of tensors of a GGUF model: the same name in every layer (<c>blk.*.ffn_down_exps.weight</c>).</summary>
/// <param name="Name">The name with the layer number replaced by *.</param>
/// <param name="Count">Tensors of the class.</param>
/// <param name="Types">Tensors per ggml type name ("q8_0" → 32), in type order.</param>
/// <param name="Elements">Elements of all of them.</param>
/// <param name="Bytes">Bytes of all of them as stored.</param>
public sealed record GgufTensorClass(string Name, int Count, IReadOnlyList<(string Type, int Count)> Types, long Elements, long Bytes)
{
    /// <summary>Bits per weight as stored, scales included.</summary>
    public double BitsPerWeight => Elements == 0 ? 0 : 8.0 * Bytes / Elements;
}

/// <summary>What <c>daop inspect</c> shows of a GGUF file beyond the model: the format, and per tensor class its types and bytes.</summary>
public static partial class GgufSummary
{
    [GeneratedRegex(@"^blk\.\d+\.", RegexOptions.CultureInvariant)]
    private static partial Regex Layer();

    /// <summary>The tensor classes of <paramref name="c"/>, in the order of their first tensor.</summary>
    public static IReadOnlyList<GgufTensorClass> Classes(GgufCheckpoint c) => c.Tensors
        .GroupBy(t => Layer().Replace(t.Name, "blk.*."))
        .Select(g => new GgufTensorClass(g.Key, g.Count(),
            g.GroupBy(t => t.Type).OrderBy(t => t.Key).Select(t => (t.Key.Name(), t.Count())).ToArray(),
            g.Sum(t => t.ElementCount), g.Sum(t => t.ByteLength)))
        .ToArray();

    /// <summary>The ggml types of a file and the bytes each takes ("q8_0" → bytes), largest first.</summary>
    public static IReadOnlyList<(string Type, long Bytes)> Types(GgufCheckpoint c) => c.Tensors
        .GroupBy(t => t.Type).Select(g => (g.Key.Name(), g.Sum(t => t.ByteLength))).OrderByDescending(x => x.Item2).ToArray();
}
