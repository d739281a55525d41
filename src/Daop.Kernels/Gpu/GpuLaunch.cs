using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// What every op class of one kernel set shares: the accelerator's loaded kernels, the set's resolved options, the
/// launch shapes (all kernels are grid-stride, so any grid covers the work) and the launch count.
/// </summary>
internal sealed class GpuLaunch(GpuKernelLoader loader, GpuKernelOptions options)
{
    long _launches, _generated;

    public GpuKernelLoader Loader { get; } = loader;
    public GpuContext Gpu => Loader.Gpu;
    public GpuKernelOptions Options { get; } = options;
    public bool IsCpu => Loader.IsCpu;
    public int GroupSize => Loader.GroupSize;
    public int MaxGroups => Loader.MaxGroups;
    /// <summary>Threads per output row of the row kernels (resolved <see cref="GpuKernelOptions.Lanes"/>).</summary>
    public int Lanes { get; } = options.Lanes;

    public long Launches => Interlocked.Read(ref _launches);
    public long GeneratedLaunches => Interlocked.Read(ref _generated);

    /// <summary>Counts one launch whose shape the caller built itself.</summary>
    public void Count() => Interlocked.Increment(ref _launches);

    /// <summary>Counts a launch of a generated (shape-specialised) kernel, on top of <see cref="Count"/>.</summary>
    public void CountGenerated() => Interlocked.Increment(ref _generated);

    /// <summary>A counted launch of one thread per element, at most <see cref="MaxGroups"/> groups.</summary>
    public KernelConfig Elementwise(long n)
    {
        long groups = Math.Clamp((n + GroupSize - 1) / GroupSize, 1, MaxGroups);
        Count();
        return new KernelConfig((int)groups, GroupSize);
    }

    /// <summary>A counted launch of <paramref name="teams"/> teams of <paramref name="lanes"/> threads in groups of <paramref name="groupSize"/>.</summary>
    public KernelConfig Teams(long teams, int lanes, int groupSize)
    {
        long groups = Math.Clamp((teams * lanes + groupSize - 1) / groupSize, 1, IsCpu ? MaxGroups : int.MaxValue);
        Count();
        return new KernelConfig((int)groups, groupSize);
    }

    /// <summary>The row-kernel launch of <paramref name="teams"/> teams of <see cref="Lanes"/> threads.</summary>
    public KernelConfig RowTeams(long teams) => Teams(teams, Lanes, GroupSize);

    /// <summary>v as whole Float4s (the kernels never read its last partial 4 floats through this view).</summary>
    public GpuView<Float4> AsFloat4(GpuView<float> v) =>
        v.Length >= 4 ? v.SubView(0, v.Length / 4 * 4).Cast<Float4>() : Loader.Dummy4;

    /// <summary><see cref="RowKernels.FlagAligned"/> when rows of <paramref name="cols"/> floats start 16-byte aligned.</summary>
    public static int AlignedFlag(int cols) => cols % 4 == 0 ? RowKernels.FlagAligned : 0;

    /// <summary>Row-kernel arguments for <paramref name="tokens"/> input rows through <paramref name="w"/>.</summary>
    public RowArgs RowArgs(in GpuMatrix w, int tokens) => new()
    {
        Rows = w.Rows, Cols = w.Cols, RowChunks = w.RowChunks,
        Tokens = tokens, Lanes = Lanes, Flags = AlignedFlag(w.Cols), TopK = 1, BlockRows = BlockRows(w),
    };

    /// <summary>Rows per team of the single-token block-format kernels for <paramref name="w"/> (<see cref="RowArgs.BlockRows"/>).</summary>
    public int BlockRows(in GpuMatrix w) => w.Type.IsBlock() && w.Cols % 4 == 0 ? Options.BlockRows : 1;
}
