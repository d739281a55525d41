using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Dense Linear y = x·Wᵀ (+ bias): the decode GEMV (<see cref="GemvKernels"/>) for one token, the row kernel
/// (<see cref="RowKernels.Gemv{TW}"/>) up to <see cref="GpuKernelOptions.LinearRowTokens"/>, the batched FMA tile or bf16
/// tensor-core kernels beyond.
/// </summary>
internal sealed class LinearOps(GpuLaunch launch, BatchedOps batched)
{
    readonly IKernelMaker<GemvLaunch> _gemv1 = launch.Options.GemvUnroll switch
    {
        2 => Gemv1Maker<Unroll2>.Instance,
        8 => Gemv1Maker<Unroll8>.Instance,
        _ => Gemv1Maker<Unroll4>.Instance,
    };
    readonly string _gemv1Name = "Gemv1." + launch.Options.GemvUnroll;
    readonly IKernelMaker<Gemv3Launch> _gemv3 = launch.Options.GemvUnroll switch
    {
        2 => Gemv3Maker<Unroll2>.Instance,
        8 => Gemv3Maker<Unroll8>.Instance,
        _ => Gemv3Maker<Unroll4>.Instance,
    };
    readonly string _gemv3Name = "Gemv3." + launch.Options.GemvUnroll;

    /// <summary>
    /// y [T, rows] = x [T, cols] · Wᵀ (+ bias [rows]). x and y must be whole buffers (16-byte aligned starts).
    /// One token: the decode GEMV; up to <see cref="GpuKernelOptions.LinearRowTokens"/>: the row kernel; more: the batched kernels.
    /// </summary>
    public void Gemv(GpuStream s, in GpuMatrix w, GpuView<float> x, GpuView<float> y, int tokens, GpuView<float>? bias)
    {
        if (tokens <= 0 || w.Rows == 0) return;
        var l = launch.Loader;
        var a = launch.RowArgs(w, tokens);
        if (bias is { } b) a.Flags |= RowKernels.FlagBias;
        var bv = bias ?? l.DummyF;
        if (tokens == 1)
        {
            l.Typed(_gemv1Name, w.Type, w.Type, _gemv1)(s, launch.Teams((w.Rows + a.BlockRows - 1) / a.BlockRows, launch.Lanes, launch.Options.GemvGroupSize),
                w.Data, x, launch.AsFloat4(x), bv, y, a);
            return;
        }
        if (tokens <= launch.Options.LinearRowTokens)
        {
            l.Typed("Gemv", w.Type, w.Type, GemvMaker.Instance)(s, launch.RowTeams((long)w.Rows * ((tokens + 3) / 4)),
                w.Data, x, launch.AsFloat4(x), bv, y, a);
            return;
        }
        var t = BatchedOps.TileArgsOf(w, tokens, a.Flags);
        if (batched.Mma(w.Type))
        {
            // Tiles of 64 positions here, not the FMA tiles' 32: every tile's split rows must lie in the split buffer.
            t.Tiles = MmaKernels.DenseTiles(tokens);
            lock (batched.SplitLock)
            {
                var xs = batched.SplitRows(s, x, null, w, tokens, 1, ref t);
                batched.MmaKernelsLoaded.Linear(w.Type)(s, batched.MmaConfig((long)t.Tiles * ((w.Rows + 15) / 16)), w.Data, xs, bv, y, t);
            }
            return;
        }
        l.Typed("TileLinear", w.Type, w.Type, TileLinearMaker.Instance)(s, batched.TileConfig(t), w.Data, x, launch.AsFloat4(x), bv, y, t);
    }

    /// <summary>
    /// y0, y1, y2 = x · W0ᵀ, W1ᵀ, W2ᵀ (+ biases) for <paramref name="tokens"/> tokens: one launch of
    /// <see cref="GemvKernels.Gemv3{TW, TU}"/> for one token when the three share a dtype and row layout, have biases all
    /// or none, and are not block formats read two rows per team; else three <see cref="Gemv"/>s.
    /// </summary>
    public void Gemv3(GpuStream s, in GpuMatrix w0, in GpuMatrix w1, in GpuMatrix w2, GpuView<float> x, GpuView<float> y0,
        GpuView<float> y1, GpuView<float> y2, int tokens, GpuView<float>? b0, GpuView<float>? b1, GpuView<float>? b2)
    {
        bool fused = tokens == 1 && w0.Type == w1.Type && w0.Type == w2.Type && w0.Cols == w1.Cols && w0.Cols == w2.Cols
            && w0.RowChunks == w1.RowChunks && w0.RowChunks == w2.RowChunks && launch.BlockRows(w0) == 1
            && (b0 != null) == (b1 != null) && (b0 != null) == (b2 != null);
        if (!fused)
        {
            Gemv(s, w0, x, y0, tokens, b0);
            Gemv(s, w1, x, y1, tokens, b1);
            Gemv(s, w2, x, y2, tokens, b2);
            return;
        }
        var l = launch.Loader;
        var a = launch.RowArgs(w0, 1);
        a.Rows = w0.Rows + w1.Rows + w2.Rows;
        if (b0 != null) a.Flags |= RowKernels.FlagBias;
        l.Typed(_gemv3Name, w0.Type, w0.Type, _gemv3)(s, launch.Teams(a.Rows, launch.Lanes, launch.Options.GemvGroupSize),
            w0.Data, w1.Data, w2.Data, x, launch.AsFloat4(x), b0 ?? l.DummyF, b1 ?? l.DummyF, b2 ?? l.DummyF, y0, y1, y2, a, w0.Rows, w1.Rows);
    }

    /// <summary>Binds every Linear kernel of this set for every format in <paramref name="formats"/> (the catalog's walk).</summary>
    public void LoadAll(IReadOnlyList<DType> formats)
    {
        var l = launch.Loader;
        foreach (var t in formats)
        {
            l.Typed(_gemv1Name, t, t, _gemv1);
            l.Typed("Gemv", t, t, GemvMaker.Instance);
            l.Typed("TileLinear", t, t, TileLinearMaker.Instance);
            l.Typed(_gemv3Name, t, t, _gemv3);
        }
    }

    sealed class Gemv3Maker<TU> : IKernelMaker<Gemv3Launch> where TU : struct, IUnroll
    {
        public static readonly Gemv3Maker<TU> Instance = new();

        public Gemv3Launch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>,
                GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, RowArgs, int, int>(GemvKernels.Gemv3<T1, TU>);
    }

    sealed class Gemv1Maker<TU> : IKernelMaker<GemvLaunch> where TU : struct, IUnroll
    {
        public static readonly Gemv1Maker<TU> Instance = new();

        public GemvLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, GpuView<float>, RowArgs>(GemvKernels.Gemv1<T1, TU>);
    }

    sealed class GemvMaker : IKernelMaker<GemvLaunch>
    {
        public static readonly GemvMaker Instance = new();

        public GemvLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, GpuView<float>, RowArgs>(RowKernels.Gemv<T1>);
    }

    sealed class TileLinearMaker : IKernelMaker<TileLinearLaunch>
    {
        public static readonly TileLinearMaker Instance = new();

        public TileLinearLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            src.Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, GpuView<float>, TileArgs>(TileKernels.Linear<T1>);
    }
}
