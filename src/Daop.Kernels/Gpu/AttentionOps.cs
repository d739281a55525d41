using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Causal GQA with the K/V append fused (<see cref="AttentionKernel.Causal"/>): one group per (token, head) of
/// <see cref="GpuKernelOptions.AttentionTeams"/> teams of <see cref="GpuKernelOptions.AttentionLanes"/> threads.
/// </summary>
internal sealed class AttentionOps(GpuLaunch launch)
{
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
        GpuView<float>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<float>, GpuView<int>, AttnArgs> _attention =
        launch.Loader.Load("Attention", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
            GpuView<float>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<float>,
            GpuView<int>, AttnArgs>(AttentionKernel.Causal));

    /// <summary>
    /// For the tokens of <paramref name="stepTokens"/> [T, <see cref="StepTokens.Fields"/>] whose pool is <paramref name="pool"/>:
    /// appends k, v [T, NKV·D] to kc, vc [slots·capacity, NKV·D] at each token's slot and position and writes
    /// o [T, NH·D] = causal (optionally windowed, or within aligned chunks of <paramref name="chunk"/> positions) GQA of q
    /// over its sequence's keys — one launch for every sequence of the pool. <paramref name="sinks"/> [NH], if given, join
    /// each head's softmax denominator.
    /// </summary>
    public void Attention(GpuStream s, GpuView<float> q, GpuView<float> k, GpuView<float> v, GpuView<float> kc,
        GpuView<float> vc, GpuView<float> o, GpuView<int> stepTokens, int tokens, int capacity, int heads, int kvHeads, int headDim,
        int window, GpuView<float>? sinks = null, int chunk = 0, int pool = 0)
    {
        if (tokens <= 0) return;
        if (headDim > AttentionKernel.MaxHeadDim) throw new NotSupportedException($"head dim {headDim} > {AttentionKernel.MaxHeadDim}");
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} heads are not a multiple of {kvHeads} kv heads");
        int lanes = launch.Options.AttentionLanes, teams = launch.Options.AttentionTeams;
        teams = Math.Min(launch.IsCpu ? Math.Min(4, teams) : teams, launch.Gpu.MaxThreadsPerGroup / lanes);
        var a = new AttnArgs
        {
            Tokens = tokens, Capacity = capacity, Pool = pool, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
            Window = Math.Max(0, window), Chunk = Math.Max(0, chunk), Lanes = lanes, Scale = 1f / MathF.Sqrt(headDim), Sinks = sinks != null ? 1 : 0,
        };
        long items = (long)tokens * heads;
        int groups = (int)Math.Min(items, launch.IsCpu ? launch.MaxGroups : int.MaxValue);
        launch.Count();
        _attention(s, new KernelConfig(groups, teams * lanes), q, k, v, kc, vc, o, launch.AsFloat4(q), launch.AsFloat4(k), launch.AsFloat4(v),
            launch.AsFloat4(kc), launch.AsFloat4(vc), sinks ?? launch.Loader.DummyF, stepTokens, a);
    }
}
