using System.Text;
using Daop.Generators.Model;

namespace Daop.Generators.Emit;

/// <summary>
/// Emits everything one expert shape gets: the <c>IExpertShape</c> struct whose constants the CPU kernel is
/// specialised on, the <c>GeneratedExpertKernels</c> entry for that instantiation, and the shape's ILGPU kernels.
/// </summary>
internal static class ShapeEmitter
{
    /// <summary>Hint name of the shape's file.</summary>
    public static string HintName(ExpertShape s) => "ExpertShape_" + s.Id + ".g.cs";

    public static string Emit(ExpertShape s)
    {
        string shape = "ExpertShape_" + s.Id;
        string usedBy = Code.Xml(string.Join(", ", s.UsedBy));
        var sb = new StringBuilder();
        sb.Append(Code.Header);
        sb.Line("using Daop.Kernels.Gpu;");
        sb.Line("using ILGPU;");
        sb.Line();
        sb.Line("namespace Daop.Kernels.Generated;");
        sb.Line();
        sb.Line("/// <summary>");
        sb.Line("/// Expert FFN shape hidden " + s.Hidden + " × inter " + s.Inter + ", " + s.TypeName + " weights.");
        sb.Line("/// Named by: " + usedBy + ".");
        sb.Line("/// </summary>");
        sb.Line("public readonly struct " + shape + " : IExpertShape");
        sb.Line("{");
        sb.Line("    /// <inheritdoc/>");
        sb.Line("    public static int Hidden => " + s.Hidden + ";");
        sb.Line("    /// <inheritdoc/>");
        sb.Line("    public static int Inter => " + s.Inter + ";");
        sb.Line("    /// <inheritdoc/>");
        sb.Line("    public static DType Type => DType." + s.Type + ";");
        sb.Line("}");
        sb.Line();
        sb.Line("public static partial class GeneratedExpertKernels");
        sb.Line("{");
        sb.Line("    /// <summary>");
        sb.Line("    /// The CPU expert kernel specialised for <see cref=\"" + shape + "\"/>: loop trip counts and tails are");
        sb.Line("    /// JIT-time constants. Used by " + usedBy + ".");
        sb.Line("    /// </summary>");
        sb.Line("    public static ShapedExpertKernel<" + shape + "> " + s.Id + " => ShapedExpertKernel<" + shape + ">.Instance;");
        sb.Line("}");
        sb.Line();
        sb.Line("public static partial class GeneratedIlgpuKernels");
        sb.Line("{");
        sb.Line("    /// <summary>The ILGPU kernels for <see cref=\"" + shape + "\"/> (<see cref=\"" + IlgpuEmitter.ClassName(s) + "\"/>).</summary>");
        sb.Line("    public static GeneratedGpuExpert " + s.Id + " => " + IlgpuEmitter.ClassName(s) + ".Expert;");
        sb.Line("}");
        sb.Line();
        IlgpuEmitter.Emit(sb, s);
        return sb.ToString();
    }
}
