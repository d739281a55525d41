using System.Text;
using Daop.Generators.Model;

namespace Daop.Generators.Emit;

/// <summary>
/// Emits an expert shape's routed ILGPU kernels: <c>GateUpRouted</c>, <c>DownRouted</c> and <c>DownCombine</c>, with the
/// parameters, launch shape and index layout of the generic <c>RowKernels.GateUp</c>, <c>Down</c> and
/// <c>DownCombine</c> (tiles of up to 4 positions, grouped through the index view or dense), so the expert launchers
/// of <c>GpuKernels</c> can swap one for the other. Row counts, row lengths in chunks and the dtype are constants;
/// one weight load feeds every position of a tile, and a one-position tile (decode) runs a loop of its own.
/// </summary>
/// <remarks>
/// Activation rows are read as Float4s at row offsets p·Hidden and p·Inter, so only shapes with both a multiple of 4
/// get these kernels (<see cref="Applies"/>); the others keep the generic path.
/// </remarks>
internal static class RoutedEmitter
{
    /// <summary>Whether <paramref name="s"/> gets routed kernels.</summary>
    public static bool Applies(ExpertShape s) => s.Hidden % 4 == 0 && s.Inter % 4 == 0;

    public static void Emit(StringBuilder sb, ExpertShape s, int hiddenChunks, int interChunks, int per)
    {
        sb.Line();
        GateUp(sb);
        sb.Line();
        Down(sb);
        sb.Line();
        DownCombine(sb);
        sb.Line();
        DotAt(sb, s, "DotHiddenAt", s.Hidden, hiddenChunks, per);
        sb.Line();
        DotAt(sb, s, "DotInterAt", s.Inter, interChunks, per);
    }

    // Team, lane and grid-stride bounds over `items` = rows · tiles (or tokens), as in RowKernels.
    static void Prologue(StringBuilder sb, string items)
    {
        sb.Line("        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X, team = gtid / lanes, lane = gtid - team * lanes;");
        sb.Line("        int teams = Grid.DimX * Group.DimX / lanes, items = " + items + ", iters = (items + teams - 1) / teams;");
    }

    /// <summary>
    /// The start of a tiled kernel's body: the team prologue over <paramref name="rows"/> · a.Tiles items, and the loop
    /// head that gives each team its row r of tile (expert e, first position p0, n positions), opened and left open.
    /// </summary>
    static void TileLoop(StringBuilder sb, string rows)
    {
        Prologue(sb, rows + " * a.Tiles");
        sb.Line("        int ntU = a.Tokens < 4 ? a.Tokens : 4;");
        sb.Line("        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;");
        sb.Line("        for (int it = 0; it < iters; it++)");
        sb.Line("        {");
        sb.Line("            int item = it * teams + team;");
        sb.Line("            bool valid = item < items;");
        sb.Line("            int tile = valid ? item / " + rows + " : 0, r = valid ? item - tile * " + rows + " : 0;");
        sb.Line("            RowKernels.Tile(index, a, tile, out int e, out int p0, out int n);");
    }

    static void GateUp(StringBuilder sb)
    {
        sb.Line("    /// <summary>");
        sb.Line("    /// As RowKernels.GateUp: h[p, r] = SiLU(gate[e, r]·x[row(p)]) · (up[e, r]·x[row(p)]) for r &lt; Inter over tiles of up");
        sb.Line("    /// to 4 positions (grouped: tiles and routing slots from the index view, row(p) = slot / TopK; dense: expert 0).");
        sb.Line("    /// </summary>");
        sb.Line("    public static void GateUpRouted(ArrayView<Chunk16> gate, ArrayView<Chunk16> up, ArrayView<float> x, ArrayView<Float4> x4,");
        sb.Line("        ArrayView<int> index, ArrayView<float> h, RowArgs a)");
        sb.Line("    {");
        TileLoop(sb, "Inter");
        sb.Line("            if (!valid) n = 0;");
        sb.Line("            long x0 = RowKernels.RowOf(index, grouped, a.TopK, p0, n, 0) * Hidden, x1 = RowKernels.RowOf(index, grouped, a.TopK, p0, n, 1) * Hidden;");
        sb.Line("            long x2 = RowKernels.RowOf(index, grouped, a.TopK, p0, n, 2) * Hidden, x3 = RowKernels.RowOf(index, grouped, a.TopK, p0, n, 3) * Hidden;");
        sb.Line("            long row = ((long)e * Inter + r) * HiddenChunks;");
        sb.Line("            float g0 = 0f, g1 = 0f, g2 = 0f, g3 = 0f, u0 = 0f, u1 = 0f, u2 = 0f, u3 = 0f;");
        sb.Line("            if (n == 1)");
        sb.Line("            {");
        sb.Line("                for (int j = lane; j < HiddenChunks; j += lanes)");
        sb.Line("                {");
        sb.Line("                    g0 += DotHiddenAt(gate[row + j], x, x4, x0, j);");
        sb.Line("                    u0 += DotHiddenAt(up[row + j], x, x4, x0, j);");
        sb.Line("                }");
        sb.Line("            }");
        sb.Line("            else if (n > 1)");
        sb.Line("            {");
        sb.Line("                for (int j = lane; j < HiddenChunks; j += lanes)");
        sb.Line("                {");
        sb.Line("                    Chunk16 cg = gate[row + j], cu = up[row + j];");
        sb.Line("                    g0 += DotHiddenAt(cg, x, x4, x0, j); u0 += DotHiddenAt(cu, x, x4, x0, j);");
        sb.Line("                    g1 += DotHiddenAt(cg, x, x4, x1, j); u1 += DotHiddenAt(cu, x, x4, x1, j);");
        sb.Line("                    if (n > 2) { g2 += DotHiddenAt(cg, x, x4, x2, j); u2 += DotHiddenAt(cu, x, x4, x2, j); }");
        sb.Line("                    if (n > 3) { g3 += DotHiddenAt(cg, x, x4, x3, j); u3 += DotHiddenAt(cu, x, x4, x3, j); }");
        sb.Line("                }");
        sb.Line("            }");
        sb.Line("            g0 = GpuMath.TeamSum(g0, lanes); u0 = GpuMath.TeamSum(u0, lanes);");
        sb.Line("            if (ntU > 1) { g1 = GpuMath.TeamSum(g1, lanes); u1 = GpuMath.TeamSum(u1, lanes); }");
        sb.Line("            if (ntU > 2) { g2 = GpuMath.TeamSum(g2, lanes); u2 = GpuMath.TeamSum(u2, lanes); }");
        sb.Line("            if (ntU > 3) { g3 = GpuMath.TeamSum(g3, lanes); u3 = GpuMath.TeamSum(u3, lanes); }");
        sb.Line("            if (valid && lane == 0 && n > 0)");
        sb.Line("            {");
        sb.Line("                long o = (long)p0 * Inter + r;");
        sb.Line("                h[o] = GpuMath.Silu(g0) * u0;");
        sb.Line("                if (n > 1) h[o + Inter] = GpuMath.Silu(g1) * u1;");
        sb.Line("                if (n > 2) h[o + 2 * Inter] = GpuMath.Silu(g2) * u2;");
        sb.Line("                if (n > 3) h[o + 3 * Inter] = GpuMath.Silu(g3) * u3;");
        sb.Line("            }");
        sb.Line("        }");
        sb.Line("    }");
    }

    static void Down(StringBuilder sb)
    {
        sb.Line("    /// <summary>");
        sb.Line("    /// As RowKernels.Down: out[o(p), r] = s(p) · down[e, r]·h[p] for r &lt; Hidden over tiles of up to 4 positions;");
        sb.Line("    /// grouped: o(p) = index[p] (the routing slot), s(p) = scales[slot]; dense: o(p) = p, s = 1.");
        sb.Line("    /// </summary>");
        sb.Line("    public static void DownRouted(ArrayView<Chunk16> down, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,");
        sb.Line("        ArrayView<float> scales, ArrayView<float> y, RowArgs a)");
        sb.Line("    {");
        TileLoop(sb, "Hidden");
        sb.Line("            if (!valid) n = 0;");
        sb.Line("            long row = ((long)e * Hidden + r) * InterChunks, h0 = (long)p0 * Inter;");
        sb.Line("            float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;");
        sb.Line("            if (n == 1)");
        sb.Line("            {");
        sb.Line("                for (int j = lane; j < InterChunks; j += lanes) d0 += DotInterAt(down[row + j], h, h4, h0, j);");
        sb.Line("            }");
        sb.Line("            else if (n > 1)");
        sb.Line("            {");
        sb.Line("                for (int j = lane; j < InterChunks; j += lanes)");
        sb.Line("                {");
        sb.Line("                    Chunk16 c = down[row + j];");
        sb.Line("                    d0 += DotInterAt(c, h, h4, h0, j);");
        sb.Line("                    d1 += DotInterAt(c, h, h4, h0 + Inter, j);");
        sb.Line("                    if (n > 2) d2 += DotInterAt(c, h, h4, h0 + 2 * Inter, j);");
        sb.Line("                    if (n > 3) d3 += DotInterAt(c, h, h4, h0 + 3 * Inter, j);");
        sb.Line("                }");
        sb.Line("            }");
        sb.Line("            d0 = GpuMath.TeamSum(d0, lanes);");
        sb.Line("            if (ntU > 1) d1 = GpuMath.TeamSum(d1, lanes);");
        sb.Line("            if (ntU > 2) d2 = GpuMath.TeamSum(d2, lanes);");
        sb.Line("            if (ntU > 3) d3 = GpuMath.TeamSum(d3, lanes);");
        sb.Line("            if (valid && lane == 0)");
        sb.Line("            {");
        sb.Line("                if (n > 0) Store(index, scales, y, grouped, p0, r, d0);");
        sb.Line("                if (n > 1) Store(index, scales, y, grouped, p0 + 1, r, d1);");
        sb.Line("                if (n > 2) Store(index, scales, y, grouped, p0 + 2, r, d2);");
        sb.Line("                if (n > 3) Store(index, scales, y, grouped, p0 + 3, r, d3);");
        sb.Line("            }");
        sb.Line("        }");
        sb.Line("    }");
        sb.Line();
        sb.Line("    static void Store(ArrayView<int> index, ArrayView<float> scales, ArrayView<float> y, bool grouped, int p, int r, float d)");
        sb.Line("    {");
        sb.Line("        if (grouped)");
        sb.Line("        {");
        sb.Line("            int slot = index[p];");
        sb.Line("            y[(long)slot * Hidden + r] = scales[slot] * d;");
        sb.Line("        }");
        sb.Line("        else y[(long)p * Hidden + r] = d;");
        sb.Line("    }");
    }

    static void DownCombine(StringBuilder sb)
    {
        sb.Line("    /// <summary>");
        sb.Line("    /// As RowKernels.DownCombine: y[t, r] = Σ_j s(t,j) · down[e(t,j), r]·h[pos(t,j)] over the TopK slots of token t");
        sb.Line("    /// (a.Tokens tokens; slot → expert and slot → position maps at ExpertOffset and PosOffset of the index view).");
        sb.Line("    /// </summary>");
        sb.Line("    public static void DownCombine(ArrayView<Chunk16> down, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,");
        sb.Line("        ArrayView<float> scales, ArrayView<float> y, RowArgs a)");
        sb.Line("    {");
        Prologue(sb, "Hidden * a.Tokens");
        sb.Line("        for (int it = 0; it < iters; it++)");
        sb.Line("        {");
        sb.Line("            int item = it * teams + team;");
        sb.Line("            bool valid = item < items;");
        sb.Line("            int t = valid ? item / Hidden : 0, r = valid ? item - t * Hidden : 0, slots = valid ? a.TopK : 0;");
        sb.Line("            float acc = 0f;");
        sb.Line("            for (int k = 0; k < slots; k++)");
        sb.Line("            {");
        sb.Line("                int slot = t * a.TopK + k;");
        sb.Line("                int e = index[a.ExpertOffset + slot], p = index[a.PosOffset + slot];");
        sb.Line("                long row = ((long)e * Hidden + r) * InterChunks, hp = (long)p * Inter;");
        sb.Line("                float d = 0f;");
        sb.Line("                for (int j = lane; j < InterChunks; j += lanes) d += DotInterAt(down[row + j], h, h4, hp, j);");
        sb.Line("                acc += scales[slot] * d;");
        sb.Line("            }");
        sb.Line("            acc = GpuMath.TeamSum(acc, lanes);");
        sb.Line("            if (valid && lane == 0) y[(long)t * Hidden + r] = acc;");
        sb.Line("        }");
        sb.Line("    }");
    }

    // Σ over chunk j of w[k]·v[o + j·per + k], o a multiple of 4: whole chunks as Float4s of v4, a partial last chunk (only
    // emitted when rows end in one; it holds 4 elements, as cols % 4 == 0) element-wise.
    static void DotAt(StringBuilder sb, ExpertShape s, string name, int cols, int chunks, int per)
    {
        sb.Line("    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]");
        sb.Line("    static float " + name + "(Chunk16 w, ArrayView<float> v, ArrayView<Float4> v4, long o, int j)");
        sb.Line("    {");
        if (cols % per != 0)
        {
            sb.Line("        if (j == " + (chunks - 1) + ")");
            sb.Line("        {");
            sb.Line("            long c = o + (long)j * " + per + ";");
            sb.Line("            float s = 0f;");
            for (int k = 0; k < cols % per; k++)
                sb.Line("            s += v[c + " + k + "] * " + IlgpuEmitter.Element(s.Type, k) + ";");
            sb.Line("            return s;");
            sb.Line("        }");
        }
        if (per == 8)
        {
            sb.Line("        long q = (o >> 2) + 2L * j;");
            sb.Line("        Float4 a = v4[q], b = v4[q + 1];");
            sb.Line("        return " + IlgpuEmitter.Element(s.Type, 0) + " * a.X + " + IlgpuEmitter.Element(s.Type, 1) + " * a.Y");
            sb.Line("            + " + IlgpuEmitter.Element(s.Type, 2) + " * a.Z + " + IlgpuEmitter.Element(s.Type, 3) + " * a.W");
            sb.Line("            + " + IlgpuEmitter.Element(s.Type, 4) + " * b.X + " + IlgpuEmitter.Element(s.Type, 5) + " * b.Y");
            sb.Line("            + " + IlgpuEmitter.Element(s.Type, 6) + " * b.Z + " + IlgpuEmitter.Element(s.Type, 7) + " * b.W;");
        }
        else
        {
            sb.Line("        Float4 a = v4[(o >> 2) + j];");
            sb.Line("        return " + IlgpuEmitter.Element(s.Type, 0) + " * a.X + " + IlgpuEmitter.Element(s.Type, 1) + " * a.Y");
            sb.Line("            + " + IlgpuEmitter.Element(s.Type, 2) + " * a.Z + " + IlgpuEmitter.Element(s.Type, 3) + " * a.W;");
        }
        sb.Line("    }");
    }
}
