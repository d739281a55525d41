using Daop.Kernels.Generated;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Picks the generated kernel that stands in for a generic row kernel of <see cref="ExpertOps"/>: one exists when the
/// kernel set's <see cref="GpuKernelOptions.GeneratedExperts"/> hold an expert of the matrices' shape and dtype with
/// routed kernels (<see cref="GeneratedGpuExpert.HasRoutedKernels"/>). The generated kernels take the row kernels'
/// parameters and launch shape, so the caller just swaps the delegate. Lookups are allocation-free.
/// </summary>
internal sealed class GeneratedExpertOps
{
    readonly GpuLaunch _launch;
    readonly Dictionary<(int Hidden, int Inter, DType Type), Entry> _byShape = [];

    public GeneratedExpertOps(GpuLaunch launch)
    {
        _launch = launch;
        foreach (var e in launch.Options.GeneratedExperts ?? [])
            if (e.HasRoutedKernels) _byShape.TryAdd((e.Hidden, e.Inter, e.Type), new Entry(e));
    }

    /// <summary>The generated expert the launchers use for this shape, or null when they run the generic kernels.</summary>
    public GeneratedGpuExpert? Find(int hidden, int inter, DType type) => _byShape.TryGetValue((hidden, inter, type), out var e) ? e.Expert : null;

    /// <summary>The generated gate/up kernel for gate and up of [inter, hidden], or null.</summary>
    public GateUpLaunch? GateUp(in GpuMatrix gate, in GpuMatrix up) =>
        up.Type == gate.Type && up.Rows == gate.Rows && up.Cols == gate.Cols ? Pick(gate.Cols, gate.Rows, gate.Type)?.GateUp : null;

    /// <summary>The generated grouped/dense down kernel for down of [hidden, inter], or null.</summary>
    public DownLaunch? Down(in GpuMatrix down) => Pick(down.Rows, down.Cols, down.Type)?.Down;

    /// <summary>The generated down-and-combine kernel for down of [hidden, inter], or null.</summary>
    public DownLaunch? DownCombine(in GpuMatrix down) => Pick(down.Rows, down.Cols, down.Type)?.DownCombine;

    /// <summary>Binds the routed kernels of every generated expert of this set (the catalog's walk).</summary>
    public void LoadAll()
    {
        foreach (var e in _byShape.Values) e.Kernels(_launch.Gpu);
    }

    // Counts the launch that follows as a generated one.
    GeneratedGpuExpert.RoutedKernels? Pick(int hidden, int inter, DType type)
    {
        if (_byShape.Count == 0 || !_byShape.TryGetValue((hidden, inter, type), out var e)) return null;
        _launch.CountGenerated();
        return e.Kernels(_launch.Gpu);
    }

    sealed class Entry(GeneratedGpuExpert expert)
    {
        GeneratedGpuExpert.RoutedKernels? _kernels;

        public GeneratedGpuExpert Expert => expert;

        // The expert caches its kernels per accelerator, so a race here only reads that cache twice.
        public GeneratedGpuExpert.RoutedKernels Kernels(GpuContext gpu) => _kernels ??= expert.LoadRouted(gpu);
    }
}
