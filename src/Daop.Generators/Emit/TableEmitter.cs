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
        Table(sb, shapes, "GeneratedExpertKernels", "IExpertKernel", "Every generated kernel", "The kernel generated for this shape");
        sb.Line();
        sb.Line("/// <summary>The ILGPU expert kernels generated per shape, with the shape inlined (single-token GEMVs).</summary>");
        Table(sb, shapes, "GeneratedIlgpuKernels", "GeneratedGpuExpert", "Every generated GPU expert", "The GPU kernels generated for this shape");
        return sb.ToString();
    }

    /// <summary>
    /// One table class: <c>All</c>, the shapes' kernels of type <paramref name="type"/> in order, and <c>Find</c>, a switch
    /// from (hidden, inter, dtype) to one of them or null.
    /// </summary>
    static void Table(StringBuilder sb, IReadOnlyList<ExpertShape> shapes, string className, string type, string all, string find)
    {
        sb.Line("public static partial class " + className);
        sb.Line("{");
        sb.Line("    /// <summary>" + all + ", ordered by hidden, inter and dtype.</summary>");
        sb.Append("    public static IReadOnlyList<" + type + "> All { get; } = new " + type + "[] {");
        for (int i = 0; i < shapes.Count; i++) sb.Append(i == 0 ? " " : ", ").Append(shapes[i].Id);
        sb.Line(shapes.Count == 0 ? "};" : " };");
        sb.Line();
        sb.Line("    /// <summary>" + find + ", or null when no config named it.</summary>");
        sb.Line("    public static " + type + "? Find(int hidden, int inter, DType type) => (hidden, inter, type) switch");
        sb.Line("    {");
        foreach (var s in shapes) sb.Line("        (" + s.Hidden + ", " + s.Inter + ", DType." + s.Type + ") => " + s.Id + ",");
        sb.Line("        _ => null,");
        sb.Line("    };");
        sb.Line("}");
    }
}
