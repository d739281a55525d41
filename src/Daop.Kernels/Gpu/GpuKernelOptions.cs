using Daop.Kernels.Generated;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Launch tuning of one kernel set, fixed when the set is made: <c>GpuKernels.For(accelerator, options)</c>. Zero
/// (or null) means the accelerator's default; <see cref="GpuKernels.Options"/> holds the resolved values. A benchmark
/// that sweeps a setting makes one kernel set per value, e.g. <c>GpuKernels.For(acc, new() { GemvUnroll = 8 })</c>.
/// </summary>
public sealed record GpuKernelOptions
{
    /// <summary>Every setting at the accelerator's default.</summary>
    public static GpuKernelOptions Default { get; } = new();

    /// <summary>
    /// Threads per output row in the row and norm kernels: a power of two ≤ the warp size dividing the group size.
    /// Default: the warp size on a GPU, 1 on the CPU accelerator (where every thread is an OS thread and every
    /// shuffle a barrier; tests pick wider teams to cover the shuffle paths).
    /// </summary>
    public int Lanes { get; init; }

    /// <summary>Threads per (token, head) in the attention kernel: 1 or the warp size. Default as <see cref="Lanes"/>.</summary>
    public int AttentionLanes { get; init; }

    /// <summary>
    /// Teams that split one (token, head)'s key positions in the attention kernel, 1..<see cref="AttentionKernel.MaxTeams"/>
    /// (default; at most 4 run on the CPU accelerator, whose groups are small).
    /// </summary>
    public int AttentionTeams { get; init; }

    /// <summary>
    /// Whether batched work on bf16 and the block formats (Q8_0, Q4_0, MXFP4: dequantized to bf16 in registers) runs on
    /// the tensor cores (<see cref="MmaKernels"/>); off, it takes the fp32 FMA <see cref="TileKernels"/> like f16 and
    /// f32. Default: on for CUDA devices of compute capability 8.0 and up.
    /// On the CPU accelerator (32-wide warps only) true runs the kernels with the mma emulated, for tests.
    /// </summary>
    public bool? TensorCores { get; init; }

    /// <summary>Independent 16-byte loads in flight per lane in the single-token GEMV: 2, 4 (default) or 8.</summary>
    public int GemvUnroll { get; init; }

    /// <summary>Threads per group of the single-token GEMV: a multiple of the warp size (default: the row kernels' group).</summary>
    public int GemvGroupSize { get; init; }

    /// <summary>
    /// Rows per team (warp) of the block formats' single-token GEMV and down-and-combine: 1, or 2 (default) so that two
    /// rows share each activation load.
    /// </summary>
    public int BlockRows { get; init; }

    /// <summary>
    /// Threads per group of the tensor-core kernels: a multiple of 32 within the accelerator's limit (default 128, or
    /// that limit); checked when <see cref="TensorCores"/> is on.
    /// </summary>
    public int MmaGroupSize { get; init; }

    /// <summary>
    /// Tokens up to which a dense matrix's product runs on the row kernel (<see cref="RowKernels.Gemv{TW}"/>: tiles of 4
    /// tokens per team, the teams of one weight row side by side so the row is read from memory once) instead of the
    /// batched tile or tensor-core kernels, 4..64. Default 16, or <c>DAOP_LINEAR_ROW_TOKENS</c>. A continuous-batching
    /// decode step has one token per sequence: on an H100 (2026-12-08, ncu, 16 sequences, Mixtral-8x7B shape) the tensor-core
    /// kernel took ~150 µs for every dense matrix of that step whatever its size (q, k, v, o, the router, the LM head:
    /// one warp walks a row block's whole width, too few warps to hide the loads), against 5–60 µs of weight bytes.
    /// </summary>
    public int LinearRowTokens { get; init; }

    /// <summary>
    /// Shape-specialised expert kernels the expert launchers may use in place of the row kernels (see
    /// <see cref="GpuKernels.GateUp"/>). Default (null): every kernel generated in this build,
    /// <see cref="GeneratedIlgpuKernels.All"/>; empty: the generic kernels only. Compared by reference when kernel sets
    /// are looked up, so keep one list per configuration.
    /// </summary>
    public IReadOnlyList<GeneratedGpuExpert>? GeneratedExperts { get; init; }

    /// <summary>These options with every default filled in for <paramref name="gpu"/>, checked against its limits.</summary>
    internal GpuKernelOptions Resolve(GpuContext gpu, bool isCpu, int groupSize)
    {
        int warp = gpu.WarpSize, maxGroup = gpu.MaxThreadsPerGroup;
        var r = this with
        {
            Lanes = Lanes != 0 ? Lanes : isCpu ? 1 : warp,
            AttentionLanes = AttentionLanes != 0 ? AttentionLanes : isCpu ? 1 : warp,
            AttentionTeams = AttentionTeams != 0 ? AttentionTeams : AttentionKernel.MaxTeams,
            TensorCores = TensorCores ?? (!isCpu && gpu.ComputeCapability.Major >= 8),
            GemvUnroll = GemvUnroll != 0 ? GemvUnroll : 4,
            GemvGroupSize = GemvGroupSize != 0 ? GemvGroupSize : groupSize,
            BlockRows = BlockRows != 0 ? BlockRows : 2,
            MmaGroupSize = MmaGroupSize != 0 ? MmaGroupSize : Math.Max(32, Math.Min(128, maxGroup) / 32 * 32),
            LinearRowTokens = LinearRowTokens != 0 ? LinearRowTokens
                : int.TryParse(Environment.GetEnvironmentVariable("DAOP_LINEAR_ROW_TOKENS"), out int rt) ? rt : 16,
            GeneratedExperts = GeneratedExperts ?? GeneratedIlgpuKernels.All,
        };
        if (r.Lanes < 1 || r.Lanes > warp || (r.Lanes & (r.Lanes - 1)) != 0 || groupSize % r.Lanes != 0)
            throw new ArgumentOutOfRangeException(nameof(Lanes), r.Lanes, $"lanes must be a power of two ≤ {warp}");
        if (r.AttentionLanes != 1 && r.AttentionLanes != warp)
            throw new ArgumentOutOfRangeException(nameof(AttentionLanes), r.AttentionLanes, $"attention lanes must be 1 or {warp}");
        if (r.AttentionTeams < 1 || r.AttentionTeams > AttentionKernel.MaxTeams)
            throw new ArgumentOutOfRangeException(nameof(AttentionTeams), r.AttentionTeams, $"attention teams must be 1..{AttentionKernel.MaxTeams}");
        if (r.GemvUnroll is not (2 or 4 or 8))
            throw new ArgumentOutOfRangeException(nameof(GemvUnroll), r.GemvUnroll, "2, 4 or 8");
        if (r.LinearRowTokens < GpuKernels.RowTokens || r.LinearRowTokens > 64)
            throw new ArgumentOutOfRangeException(nameof(LinearRowTokens), r.LinearRowTokens, $"{GpuKernels.RowTokens} to 64 (DAOP_LINEAR_ROW_TOKENS)");
        if (r.BlockRows is not (1 or 2))
            throw new ArgumentOutOfRangeException(nameof(BlockRows), r.BlockRows, "1 or 2");
        if (r.GemvGroupSize < warp || r.GemvGroupSize > maxGroup || r.GemvGroupSize % warp != 0)
            throw new ArgumentOutOfRangeException(nameof(GemvGroupSize), r.GemvGroupSize, $"a multiple of {warp} ≤ {maxGroup}");
        if (r.TensorCores == true && isCpu && warp != 32)
            throw new NotSupportedException("the emulated tensor-core kernels need 32-wide warps");
        if (r.TensorCores == true && (r.MmaGroupSize < 32 || r.MmaGroupSize > maxGroup || r.MmaGroupSize % 32 != 0))
            throw new ArgumentOutOfRangeException(nameof(MmaGroupSize), r.MmaGroupSize, $"a multiple of 32 ≤ {maxGroup}");
        return r;
    }
}
