using System.Text;
using Daop.Generators.Model;

namespace Daop.Generators.Emit;

/// <summary>
/// Emits real ILGPU kernels for one expert shape (Daop.Kernels references ILGPU): a static class with
/// <c>GateUp</c> (h = SiLU(Wg·x) ⊙ (Wu·x)) and <c>Down</c> (y = Wd·h) for one token, on weights laid out as
/// <c>GpuMatrix</c> does (rows zero-padded to 16-byte <c>Chunk16</c>s). A team of <c>lanes</c> threads (a power of
/// two ≤ the warp size; the warp on a GPU) per output row, grid-stride over rows; each lane reads whole 16-byte
/// weight chunks and 16-byte <c>Float4</c> activations, and the team reduces with XOR shuffles.
/// </summary>
/// <remarks>
/// The shape is baked in where the runtime-dims kernels in Daop.Kernels.Gpu branch on arguments: row lengths in
/// chunks and the row loop bound are constants, the dtype's widening is chosen here (no dtype switch per chunk), and
/// the bound-checked scalar path for a partial last chunk is emitted only for shapes whose rows end in one.
/// Shapes whose rows are whole Float4s (hidden and inter multiples of 4, every real model) also get routed kernels
/// (<see cref="RoutedEmitter"/>) that the engine's expert launchers run in place of the generic row kernels.
/// </remarks>
internal static class IlgpuEmitter
{
    /// <summary>Class the kernels of <paramref name="s"/> live in.</summary>
    public static string ClassName(ExpertShape s) => "IlgpuExpert_" + s.Id;

    public static void Emit(StringBuilder sb, ExpertShape s)
    {
        int per = 16 / s.ElementSize;
        int hiddenChunks = (s.Hidden + per - 1) / per, interChunks = (s.Inter + per - 1) / per;
        string cls = ClassName(s);
        sb.Line("/// <summary>");
        sb.Line("/// ILGPU kernels for one token through an expert of hidden " + s.Hidden + " × inter " + s.Inter + ", " + s.TypeName + ",");
        sb.Line("/// with the shape inlined; launch them through <see cref=\"" + cls + ".Expert\"/>.");
        sb.Line("/// </summary>");
        sb.Line("public static class " + cls);
        sb.Line("{");
        sb.Line("    /// <summary>Model width: columns of gate/up, rows of down.</summary>");
        sb.Line("    public const int Hidden = " + s.Hidden + ";");
        sb.Line("    /// <summary>Expert width: rows of gate/up, columns of down.</summary>");
        sb.Line("    public const int Inter = " + s.Inter + ";");
        sb.Line("    /// <summary>16-byte chunks per gate/up row (= GpuMatrix.ChunksPerRow).</summary>");
        sb.Line("    public const int HiddenChunks = " + hiddenChunks + ";");
        sb.Line("    /// <summary>16-byte chunks per down row.</summary>");
        sb.Line("    public const int InterChunks = " + interChunks + ";");
        sb.Line();
        sb.Line("    /// <summary>The kernels with their host-side launcher.</summary>");
        bool routed = RoutedEmitter.Applies(s);
        sb.Line("    public static GeneratedGpuExpert Expert { get; } = new(Hidden, Inter, DType." + s.Type + ", GateUp, Down" +
            (routed ? ", GateUpRouted, DownRouted, DownCombine);" : ");"));
        sb.Line();
        sb.Line("    /// <summary>");
        sb.Line("    /// h[r] = SiLU(gate[r]·x) · (up[r]·x) for r &lt; Inter. x4 is x viewed as Float4 (16-byte aligned).");
        sb.Line("    /// Every lane runs the same number of iterations so that all reach the shuffles.");
        sb.Line("    /// </summary>");
        sb.Line("    public static void GateUp(ArrayView<Chunk16> gate, ArrayView<Chunk16> up, ArrayView<float> x, ArrayView<Float4> x4,");
        sb.Line("        ArrayView<float> h, int lanes)");
        sb.Line("    {");
        sb.Line("        int gtid = Grid.GlobalIndex.X, team = gtid / lanes, lane = gtid - team * lanes;");
        sb.Line("        int teams = Grid.DimX * Group.DimX / lanes, iters = (Inter + teams - 1) / teams;");
        sb.Line("        for (int it = 0; it < iters; it++)");
        sb.Line("        {");
        sb.Line("            int r = it * teams + team;");
        sb.Line("            bool valid = r < Inter;");
        sb.Line("            long row = (long)(valid ? r : 0) * HiddenChunks;");
        sb.Line("            int chunks = valid ? HiddenChunks : 0;");
        sb.Line("            float g = 0f, u = 0f;");
        sb.Line("            for (int j = lane; j < chunks; j += lanes)");
        sb.Line("            {");
        sb.Line("                g += DotHidden(gate[row + j], x, x4, j);");
        sb.Line("                u += DotHidden(up[row + j], x, x4, j);");
        sb.Line("            }");
        sb.Line("            g = GpuMath.TeamSum(g, lanes);");
        sb.Line("            u = GpuMath.TeamSum(u, lanes);");
        sb.Line("            if (valid && lane == 0) h[r] = GpuMath.Silu(g) * u;");
        sb.Line("        }");
        sb.Line("    }");
        sb.Line();
        sb.Line("    /// <summary>y[r] = down[r]·h for r &lt; Hidden. h4 is h viewed as Float4.</summary>");
        sb.Line("    public static void Down(ArrayView<Chunk16> down, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<float> y, int lanes)");
        sb.Line("    {");
        sb.Line("        int gtid = Grid.GlobalIndex.X, team = gtid / lanes, lane = gtid - team * lanes;");
        sb.Line("        int teams = Grid.DimX * Group.DimX / lanes, iters = (Hidden + teams - 1) / teams;");
        sb.Line("        for (int it = 0; it < iters; it++)");
        sb.Line("        {");
        sb.Line("            int r = it * teams + team;");
        sb.Line("            bool valid = r < Hidden;");
        sb.Line("            long row = (long)(valid ? r : 0) * InterChunks;");
        sb.Line("            int chunks = valid ? InterChunks : 0;");
        sb.Line("            float acc = 0f;");
        sb.Line("            for (int j = lane; j < chunks; j += lanes) acc += DotInter(down[row + j], h, h4, j);");
        sb.Line("            acc = GpuMath.TeamSum(acc, lanes);");
        sb.Line("            if (valid && lane == 0) y[r] = acc;");
        sb.Line("        }");
        sb.Line("    }");
        sb.Line();
        Dot(sb, s, "DotHidden", "Hidden", s.Hidden, hiddenChunks, per);
        sb.Line();
        Dot(sb, s, "DotInter", "Inter", s.Inter, interChunks, per);
        if (routed) RoutedEmitter.Emit(sb, s, hiddenChunks, interChunks, per);
        sb.Line("}");
    }

    // Σ over chunk j of w[k]·v[j·per + k]. Full chunks read v as Float4s; a partial last chunk (only emitted when
    // the row has one) reads v element-wise with bounds checks so it never reads past the vector.
    static void Dot(StringBuilder sb, ExpertShape s, string name, string bound, int cols, int chunks, int per)
    {
        bool partial = cols % per != 0;
        sb.Line("    static float " + name + "(Chunk16 w, ArrayView<float> v, ArrayView<Float4> v4, int j)");
        sb.Line("    {");
        if (partial)
        {
            sb.Line("        if (j == " + (chunks - 1) + ")");
            sb.Line("        {");
            sb.Line("            int c = j * " + per + ";");
            sb.Line("            float s = 0f;");
            for (int k = 0; k < cols % per; k++)
                sb.Line("            s += v[c + " + k + "] * " + Element(s.Type, k) + ";");
            sb.Line("            return s;");
            sb.Line("        }");
        }
        if (per == 8)
        {
            sb.Line("        Float4 a = v4[2 * j], b = v4[2 * j + 1];");
            sb.Line("        return " + Element(s.Type, 0) + " * a.X + " + Element(s.Type, 1) + " * a.Y");
            sb.Line("            + " + Element(s.Type, 2) + " * a.Z + " + Element(s.Type, 3) + " * a.W");
            sb.Line("            + " + Element(s.Type, 4) + " * b.X + " + Element(s.Type, 5) + " * b.Y");
            sb.Line("            + " + Element(s.Type, 6) + " * b.Z + " + Element(s.Type, 7) + " * b.W;");
        }
        else
        {
            sb.Line("        Float4 a = v4[j];");
            sb.Line("        return " + Element(s.Type, 0) + " * a.X + " + Element(s.Type, 1) + " * a.Y");
            sb.Line("            + " + Element(s.Type, 2) + " * a.Z + " + Element(s.Type, 3) + " * a.W;");
        }
        sb.Line("    }");
    }

    // Element k of a chunk widened to fp32, with the dtype decided here rather than at run time.
    internal static string Element(WeightType type, int k)
    {
        if (type == WeightType.F32) return "Interop.IntAsFloat(w." + Word(k) + ")";
        string word = "w." + Word(k / 2);
        if (type == WeightType.BF16)
            return k % 2 == 0 ? "Interop.IntAsFloat(" + word + " << 16)" : "Interop.IntAsFloat(" + word + " & 0xFFFF0000u)";
        return k % 2 == 0 ? "GpuMath.HalfToFloat(" + word + " & 0xFFFFu)" : "GpuMath.HalfToFloat(" + word + " >> 16)";
    }

    static string Word(int i) => i == 0 ? "X" : i == 1 ? "Y" : i == 2 ? "Z" : "W";
}
