using System.Collections.Generic;
using System.Text;
using Daop.Generators.Model;

namespace Daop.Generators.Emit;

/// <summary>
/// Emits the lookup tables over all shapes: <c>GeneratedExpertKernels.All/Find</c> and
/// <c>GeneratedIlgpuKernels.All/Find</c>. Emitted even when no config names a shape, so the hand-written registry
/// always has something to call.
/// </summary>
internal static class TableEmitter
{
    public const string HintName = "GeneratedExpertKernels.g.cs";

    public static string Emit(IReadOnlyList<ExpertShape> shapes)
    {
        var sb = new StringBuilder();
        sb.Append(Code.Header);
        sb.Line("using System.Collections.Generic;");
        sb.Line();
        sb.Line("namespace Daop.Kernels.Generated;");
        sb.Line();
        sb.Line("/// <summary>");
        sb.Line("/// The CPU expert kernels generated from the model configs under <c>models/</c>, one per distinct expert shape");
        sb.Line("/// (hidden, inter, weight dtype): " + shapes.Count + " in this build.");
        sb.Line("/// </summary>");
        sb.Line("public static partial class GeneratedExpertKernels");
        sb.Line("{");
        sb.Line("    /// <summary>Every generated kernel, ordered by hidden, inter and dtype.</summary>");
        sb.Append("    public static IReadOnlyList<IExpertKernel> All { get; } = new IExpertKernel[] {");
        for (int i = 0; i < shapes.Count; i++) sb.Append(i == 0 ? " " : ", ").Append(shapes[i].Id);
        sb.Line(shapes.Count == 0 ? "};" : " };");
        sb.Line();
        sb.Line("    /// <summary>The kernel generated for this shape, or null when no config named it.</summary>");
        sb.Line("    public static IExpertKernel? Find(int hidden, int inter, DType type) => (hidden, inter, type) switch");
        sb.Line("    {");
        foreach (var s in shapes) sb.Line("        (" + s.Hidden + ", " + s.Inter + ", DType." + s.Type + ") => " + s.Id + ",");
        sb.Line("        _ => null,");
        sb.Line("    };");
        sb.Line("}");
        sb.Line();
        sb.Line("/// <summary>The ILGPU expert kernels generated per shape, with the shape inlined (single-token GEMVs).</summary>");
        sb.Line("public static partial class GeneratedIlgpuKernels");
        sb.Line("{");
        sb.Line("    /// <summary>Every generated GPU expert, ordered by hidden, inter and dtype.</summary>");
        sb.Append("    public static IReadOnlyList<GeneratedGpuExpert> All { get; } = new GeneratedGpuExpert[] {");
        for (int i = 0; i < shapes.Count; i++) sb.Append(i == 0 ? " " : ", ").Append(shapes[i].Id);
        sb.Line(shapes.Count == 0 ? "};" : " };");
        sb.Line();
        sb.Line("    /// <summary>The GPU kernels generated for this shape, or null when no config named it.</summary>");
        sb.Line("    public static GeneratedGpuExpert? Find(int hidden, int inter, DType type) => (hidden, inter, type) switch");
        sb.Line("    {");
        foreach (var s in shapes) sb.Line("        (" + s.Hidden + ", " + s.Inter + ", DType." + s.Type + ") => " + s.Id + ",");
        sb.Line("        _ => null,");
        sb.Line("    };");
        sb.Line("}");
        return sb.ToString();
    }
}
