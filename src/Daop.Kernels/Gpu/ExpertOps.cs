using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The SwiGLU expert FFN launchers: fused gate/up + SiLU, down, and down fused with the weighted combine; with a bias view,
/// GPT-OSS's biased clamped-SwiGLU experts on the row, tile and tensor-core kernels' biased variants
/// (<see cref="ClampedSwiGluEpilogue"/>; grouped only, no generated kernels). Up to
/// <see cref="GpuKernels.RowTokens"/> positions per tile run a row kernel: the shape's generated kernel when the
/// kernel set has one (<see cref="GeneratedExpertOps"/>), else the generic <see cref="RowKernels"/>. Batched tiles
/// run the fp32 FMA <see cref="TileKernels"/> or, for bf16 and the block formats with tensor cores, <see cref="MmaKernels"/>.
/// </summary>
internal sealed class ExpertOps(GpuLaunch launch, BatchedOps batchedOps, GeneratedExpertOps generated)
{
    /// <summary>
    /// h [P, inter] = SiLU(x·Wgᵀ) ⊙ (x·Wuᵀ) for P positions; gate and up share a row layout (in practice a dtype; the down
    /// matrix may differ). Without <paramref name="index"/>: dense, row p of x for
    /// position p, expert 0 (more than <see cref="GpuKernels.RowTokens"/> positions take the batched kernels). With it:
    /// <paramref name="index"/>[p] is the routing slot of position p (x row = slot / topK) and [tileOffset, +3·tiles)
    /// holds (expert, first position, count) tiles over the expert stacks: counts ≤ 4 for the row kernel, or ≤
    /// <see cref="BatchedOps.BatchTileTokens"/> with <paramref name="batched"/>. With <paramref name="bias"/> (grouped row tiles
    /// only): h = GPT-OSS's clamped SwiGLU of the biased projections, the biases and α, limit as <paramref name="b"/> says.
    /// </summary>
    public void GateUp(GpuStream s, in GpuMatrix gate, in GpuMatrix up, GpuView<float> x, GpuView<float> h, int positions,
        GpuView<int>? index, int topK, int tiles, int tileOffset, bool batched, GpuView<float>? bias = null, ExpertBiasArgs b = default)
    {
        if (positions <= 0) return;
        if (up.Rows != gate.Rows || up.Cols != gate.Cols || up.RowChunks != gate.RowChunks)
            throw new NotSupportedException($"gate {gate.Type.Name()} [{gate.Rows}, {gate.Cols}] and up {up.Type.Name()} [{up.Rows}, {up.Cols}] " +
                "must have one shape and row layout (one dtype): the fused gate/up kernels address both with one row stride");
        var l = launch.Loader;
        CheckBiased(bias, index);
        if (index == null) batched = positions > GpuKernels.RowTokens;
        var iv = index ?? l.DummyI;
        if (batched)
        {
            var t = BatchedOps.TileArgsOf(gate, positions, GpuLaunch.AlignedFlag(gate.Cols));
            t.TopK = topK;
            if (index != null) { t.Flags |= RowKernels.FlagGrouped; t.Tiles = tiles; t.TileOffset = tileOffset; }
            if (batchedOps.Mma(gate.Type) && up.Type == gate.Type)
            {
                if (index == null) t.Tiles = MmaKernels.DenseTiles(positions);
                lock (batchedOps.SplitLock)
                {
                    var xs = batchedOps.SplitRows(s, x, index, gate, positions, topK, ref t);
                    var mc = batchedOps.MmaConfig((long)t.Tiles * ((gate.Rows + 15) / 16));
                    if (bias is { } mb) batchedOps.MmaKernelsLoaded.GateUpBiased(gate.Type)(s, mc, gate.Data, up.Data, xs, iv, h, mb, t, b);
                    else batchedOps.MmaKernelsLoaded.GateUp(gate.Type)(s, mc, gate.Data, up.Data, xs, iv, h, t);
                }
                return;
            }
            if (bias is { } tb)
                l.Typed("TileGateUpBiased", gate.Type, up.Type, TileGateUpBiasedMaker.Instance)(s, batchedOps.TileConfig(t), gate.Data, up.Data, x,
                    launch.AsFloat4(x), iv, h, tb, t, b);
            else
                l.Typed("TileGateUp", gate.Type, up.Type, TileGateUpMaker.Instance)(s, batchedOps.TileConfig(t), gate.Data, up.Data, x,
                    launch.AsFloat4(x), iv, h, t);
            return;
        }
        var a = launch.RowArgs(gate, positions);
        a.TopK = topK;
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        var teams = launch.RowTeams((long)a.Tiles * gate.Rows);
        if (bias is { } bv)
        {
            l.Typed("GateUpBiased", gate.Type, up.Type, GateUpBiasedMaker.Instance)(s, teams, gate.Data, up.Data, x, launch.AsFloat4(x), iv, h, bv, a, b);
            return;
        }
        var kernel = generated.GateUp(gate, up) ?? l.Typed("GateUp", gate.Type, up.Type, GateUpMaker.Instance);
        kernel(s, teams, gate.Data, up.Data, x, launch.AsFloat4(x), iv, h, a);
    }

    // The biased variants are grouped: the routed experts' biases are looked up by key.
    static void CheckBiased(GpuView<float>? bias, GpuView<int>? index)
    {
        if (bias != null && index == null)
            throw new NotSupportedException("biased experts run grouped tiles only (with an index: their biases are looked up by key)");
    }

    /// <summary>
    /// Down projection of P positions of h [P, inter]. Dense: y[p] = Wd·h[p]. Grouped (index and tiles as in
    /// <see cref="GateUp"/>): y[slot] = scales[slot] · Wd[e]·h[p] with slot = index[p] — per-slot outputs for Combine. With
    /// <paramref name="bias"/> (grouped only): y[slot] = scales[slot] · (Wd[e]·h[p] + bd[e]).
    /// </summary>
    public void Down(GpuStream s, in GpuMatrix down, GpuView<float> h, GpuView<float> y, int positions,
        GpuView<int>? index, GpuView<float>? scales, int tiles, int tileOffset, bool batched, GpuView<float>? bias = null, ExpertBiasArgs b = default)
    {
        if (positions <= 0) return;
        var l = launch.Loader;
        CheckBiased(bias, index);
        if (index == null) batched = positions > GpuKernels.RowTokens;
        var iv = index ?? l.DummyI;
        var sv = scales ?? l.DummyF;
        if (batched)
        {
            var t = BatchedOps.TileArgsOf(down, positions, GpuLaunch.AlignedFlag(down.Cols));
            if (index != null) { t.Flags |= RowKernels.FlagGrouped; t.Tiles = tiles; t.TileOffset = tileOffset; }
            if (batchedOps.Mma(down.Type))
            {
                if (index == null) t.Tiles = MmaKernels.DenseTiles(positions);
                lock (batchedOps.SplitLock)
                {
                    var split = t;
                    split.Flags &= ~RowKernels.FlagGrouped; // h rows are per position already
                    var xs = batchedOps.SplitRows(s, h, null, down, positions, 1, ref split);
                    t.LoOffset = split.LoOffset;
                    var mc = batchedOps.MmaConfig((long)t.Tiles * ((down.Rows + 15) / 16));
                    if (bias is { } mb) batchedOps.MmaKernelsLoaded.DownBiased(down.Type)(s, mc, down.Data, xs, iv, sv, y, mb, t, b);
                    else batchedOps.MmaKernelsLoaded.Down(down.Type)(s, mc, down.Data, xs, iv, sv, y, t);
                }
                return;
            }
            if (bias is { } tb)
                l.Typed("TileDownBiased", down.Type, down.Type, TileDownBiasedMaker.Instance)(s, batchedOps.TileConfig(t), down.Data, h,
                    launch.AsFloat4(h), iv, sv, y, tb, t, b);
            else
                l.Typed("TileDown", down.Type, down.Type, TileDownMaker.Instance)(s, batchedOps.TileConfig(t), down.Data, h, launch.AsFloat4(h),
                    iv, sv, y, t);
            return;
        }
        var a = launch.RowArgs(down, positions);
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        var teams = launch.RowTeams((long)a.Tiles * down.Rows);
        if (bias is { } bv)
        {
            l.Typed("DownBiased", down.Type, down.Type, DownBiasedMaker.Instance)(s, teams, down.Data, h, launch.AsFloat4(h), iv, sv, y, bv, a, b);
            return;
        }
        var kernel = generated.Down(down) ?? l.Typed("Down", down.Type, down.Type, DownMaker.Instance);
        kernel(s, teams, down.Data, h, launch.AsFloat4(h), iv, sv, y, a);
    }

    /// <summary>
    /// y [T, hidden] = Σ_j scales[t·topK+j] · Wd[expert(slot)]·h[pos(slot)] for T tokens; the slot → position and slot →
    /// expert maps sit at <paramref name="posOffset"/> and <paramref name="expertOffset"/> of <paramref name="index"/>. With
    /// <paramref name="bias"/>: each expert's down bias is added before its weight (GPT-OSS).
    /// </summary>
    public void DownCombine(GpuStream s, in GpuMatrix down, GpuView<float> h, GpuView<float> y, int tokens, int topK,
        GpuView<int> index, GpuView<float> scales, int posOffset, int expertOffset, GpuView<float>? bias = null, ExpertBiasArgs b = default)
    {
        if (tokens <= 0) return;
        var a = launch.RowArgs(down, tokens);
        a.TopK = topK; a.PosOffset = posOffset; a.ExpertOffset = expertOffset;
        var teams = launch.RowTeams((long)tokens * ((down.Rows + a.BlockRows - 1) / a.BlockRows));
        if (bias is { } bv)
        {
            launch.Loader.Typed("DownCombineBiased", down.Type, down.Type, DownCombineBiasedMaker.Instance)(s, teams, down.Data, h,
                launch.AsFloat4(h), index, scales, y, bv, a, b);
            return;
        }
        var kernel = generated.DownCombine(down) ?? launch.Loader.Typed("DownCombine", down.Type, down.Type, DownCombineMaker.Instance);
        kernel(s, teams, down.Data, h, launch.AsFloat4(h), index, scales, y, a);
    }

    /// <summary>Binds every expert kernel for every format in <paramref name="formats"/> (the catalog's walk).</summary>
    public void LoadAll(IReadOnlyList<DType> formats)
    {
        var l = launch.Loader;
        foreach (var t in formats)
        {
            l.Typed("GateUp", t, t, GateUpMaker.Instance);
            l.Typed("Down", t, t, DownMaker.Instance);
            l.Typed("DownCombine", t, t, DownCombineMaker.Instance);
            l.Typed("TileGateUp", t, t, TileGateUpMaker.Instance);
            l.Typed("TileDown", t, t, TileDownMaker.Instance);
            l.Typed("GateUpBiased", t, t, GateUpBiasedMaker.Instance);
            l.Typed("DownBiased", t, t, DownBiasedMaker.Instance);
            l.Typed("DownCombineBiased", t, t, DownCombineBiasedMaker.Instance);
            l.Typed("TileGateUpBiased", t, t, TileGateUpBiasedMaker.Instance);
            l.Typed("TileDownBiased", t, t, TileDownBiasedMaker.Instance);
        }
    }

    sealed class GateUpBiasedMaker : IKernelMaker<GateUpBiasedLaunch>
    {
        public static readonly GateUpBiasedMaker Instance = new();

        public GateUpBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, RowArgs,
                ExpertBiasArgs>(RowKernels.GateUpBiased<T1, T2>);
    }

    sealed class DownBiasedMaker : IKernelMaker<DownBiasedLaunch>
    {
        public static readonly DownBiasedMaker Instance = new();

        public DownBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, GpuView<float>, RowArgs,
                ExpertBiasArgs>(RowKernels.DownBiased<T1>);
    }

    sealed class DownCombineBiasedMaker : IKernelMaker<DownBiasedLaunch>
    {
        public static readonly DownCombineBiasedMaker Instance = new();

        public DownBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, GpuView<float>, RowArgs,
                ExpertBiasArgs>(RowKernels.DownCombineBiased<T1>);
    }

    sealed class GateUpMaker : IKernelMaker<GateUpLaunch>
    {
        public static readonly GateUpMaker Instance = new();

        public GateUpLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, RowArgs>(
                RowKernels.GateUp<T1, T2>);
    }

    sealed class DownMaker : IKernelMaker<DownLaunch>
    {
        public static readonly DownMaker Instance = new();

        public DownLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, RowArgs>(
                RowKernels.Down<T1>);
    }

    sealed class DownCombineMaker : IKernelMaker<DownLaunch>
    {
        public static readonly DownCombineMaker Instance = new();

        public DownLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, RowArgs>(
                RowKernels.DownCombine<T1>);
    }

    sealed class TileGateUpMaker : IKernelMaker<TileGateUpLaunch>
    {
        public static readonly TileGateUpMaker Instance = new();

        public TileGateUpLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, TileArgs>(
                TileKernels.GateUp<T1, T2>);
    }

    sealed class TileGateUpBiasedMaker : IKernelMaker<TileGateUpBiasedLaunch>
    {
        public static readonly TileGateUpBiasedMaker Instance = new();

        public TileGateUpBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs,
                ExpertBiasArgs>(TileKernels.GateUpBiased<T1, T2>);
    }

    sealed class TileDownBiasedMaker : IKernelMaker<TileDownBiasedLaunch>
    {
        public static readonly TileDownBiasedMaker Instance = new();

        public TileDownBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, GpuView<float>, TileArgs,
                ExpertBiasArgs>(TileKernels.DownBiased<T1>);
    }

    sealed class TileDownMaker : IKernelMaker<TileDownLaunch>
    {
        public static readonly TileDownMaker Instance = new();

        public TileDownLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs>(
                TileKernels.Down<T1>);
    }
}
