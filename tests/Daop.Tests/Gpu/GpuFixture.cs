using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Daop.Engine.Device.Gpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// One ILGPU context and CPU accelerator (warps of 4 threads, one warp per group) shared by every GPU-path
/// test: the CPU accelerator emulates each thread with an OS thread, so contexts are expensive and
/// kernels are compiled once for the whole collection.
/// </summary>
public class GpuFixture : IDisposable
{
    public Context Context { get; }
    public Accelerator Accelerator { get; }
    /// <summary>The kernel set tests use now: the fixture's own, or a <see cref="WithLanes"/> variant while its body runs.</summary>
    public GpuKernels Kernels { get; private set; }

    public GpuFixture() : this(4, GpuKernelOptions.Default) { }

    protected GpuFixture(int warpSize, GpuKernelOptions options)
    {
        var device = GpuKernels.CpuDevice(warpSize);
        Context = Context.Create(b => b.CPU(device).Optimize(OptimizationLevel.O1));
        Accelerator = Context.GetCPUDevice(0).CreateCPUAccelerator(Context, CPUAcceleratorMode.Parallel);
        Kernels = GpuKernels.For(Accelerator, options);
    }

    public AcceleratorStream Stream => Accelerator.DefaultStream;

    /// <summary>The fixture's accelerator as the engine drives a GPU (<see cref="IlgpuCpuGpu"/>).</summary>
    public GpuContext Gpu => IlgpuCpuGpu.For(Accelerator);

    /// <summary>
    /// Runs <paramref name="body"/> with <see cref="Kernels"/> (and <see cref="NewDevice"/>) on the kernel set with the
    /// given team widths, then returns to the fixture's own.
    /// </summary>
    public void WithLanes(int lanes, int attentionLanes, Action body, int attentionTeams = AttentionKernel.MaxTeams)
    {
        var k = Kernels;
        Kernels = GpuKernels.For(Accelerator, k.Options with { Lanes = lanes, AttentionLanes = attentionLanes, AttentionTeams = attentionTeams });
        try { body(); }
        finally { Kernels = k; }
    }

    /// <summary>A device on the shared accelerator with the options of <see cref="Kernels"/> (as set by <see cref="WithLanes"/>).</summary>
    public GpuDevice NewDevice() => new(Accelerator, Kernels.Options);

    /// <summary>
    /// The model at <paramref name="path"/> (a folder or a .gguf) all on a <see cref="NewDevice"/> with the resident
    /// expert scheduler, prompts run in chunks of <paramref name="chunk"/> tokens.
    /// </summary>
    public Daop.Engine.Model.MoeModel LoadModel(string path, int contextLength = 64, int chunk = 8) =>
        Daop.Engine.Model.MoeModel.Load(path, new Daop.Engine.Model.ModelOptions
        {
            ContextLength = contextLength,
            MaxChunkTokens = chunk,
            Device = _ => NewDevice(),
            Experts = (m, d) => new Daop.Engine.Schedule.GpuExpertScheduler(m, d),
        });

    /// <summary>The options of <see cref="Kernels"/> with <paramref name="lanes"/> threads per row.</summary>
    public GpuKernelOptions WithRowLanes(int lanes) => Kernels.Options with { Lanes = lanes };

    public MemoryBuffer1D<float, Stride1D.Dense> Upload(float[] data)
    {
        var b = Accelerator.Allocate1D<float>(Math.Max(4, (data.Length + 3) / 4 * 4));
        b.MemSetToZero();
        if (data.Length > 0) b.View.SubView(0, data.Length).CopyFromCPU(data);
        return b;
    }

    public MemoryBuffer1D<int, Stride1D.Dense> Upload(int[] data)
    {
        var b = Accelerator.Allocate1D<int>(Math.Max(4, data.Length));
        if (data.Length > 0) b.View.SubView(0, data.Length).CopyFromCPU(data);
        return b;
    }

    /// <summary>
    /// The step's token table (<see cref="StepTokens"/>) of <paramref name="segments"/> in row order, each a sequence's
    /// tokens at positions StartPos.. of slot Slot of pool Pool, uploaded.
    /// </summary>
    public MemoryBuffer1D<int, Stride1D.Dense> UploadStep(params (int Slot, int StartPos, int Tokens, int Pool)[] segments)
    {
        var table = new int[segments.Sum(g => g.Tokens) * StepTokens.Fields];
        int row = 0;
        foreach (var g in segments)
        {
            StepTokens.WriteSegment(table, row, g.Tokens, g.StartPos, g.Slot, g.Pool);
            row += g.Tokens;
        }
        return Upload(table);
    }

    /// <summary>
    /// RoPE inputs for comparing two ways of launching the same rotation: cos/sin tables of <paramref name="positions"/>
    /// rows of <paramref name="half"/>, <paramref name="tokens"/> rows of q and k, each uploaded twice (Q1/K1 for one way,
    /// Q2/K2 for the other). Disposing frees them.
    /// </summary>
    public RopeInputs Rope(int positions, int half, int tokens, int heads, int kvHeads, int headDim) =>
        new(this, NativeWeights.Floats(positions * half, 1), NativeWeights.Floats(positions * half, 2),
            NativeWeights.Floats(tokens * heads * headDim, 3), NativeWeights.Floats(tokens * kvHeads * headDim, 5));

    /// <summary>See <see cref="Rope"/>.</summary>
    public sealed class RopeInputs(GpuFixture gpu, float[] cos, float[] sin, float[] q, float[] k) : IDisposable
    {
        public float[] Q { get; } = q;
        public float[] K { get; } = k;
        public MemoryBuffer1D<float, Stride1D.Dense> Cos { get; } = gpu.Upload(cos);
        public MemoryBuffer1D<float, Stride1D.Dense> Sin { get; } = gpu.Upload(sin);
        public MemoryBuffer1D<float, Stride1D.Dense> Q1 { get; } = gpu.Upload(q);
        public MemoryBuffer1D<float, Stride1D.Dense> K1 { get; } = gpu.Upload(k);
        public MemoryBuffer1D<float, Stride1D.Dense> Q2 { get; } = gpu.Upload(q);
        public MemoryBuffer1D<float, Stride1D.Dense> K2 { get; } = gpu.Upload(k);

        /// <summary>Asserts both ways gave the same q and k, and that k turned.</summary>
        public void AssertSame()
        {
            Assert.Equal(gpu.Read(Q1, Q.Length), gpu.Read(Q2, Q.Length));
            Assert.Equal(gpu.Read(K1, K.Length), gpu.Read(K2, K.Length));
            Assert.NotEqual(K, gpu.Read(K2, K.Length));
        }

        public void Dispose()
        {
            foreach (var b in new[] { Cos, Sin, Q1, K1, Q2, K2 }) b.Dispose();
        }
    }

    public MemoryBuffer1D<float, Stride1D.Dense> Zeros(int n)
    {
        var b = Accelerator.Allocate1D<float>(Math.Max(4, (n + 3) / 4 * 4));
        b.MemSetToZero();
        return b;
    }

    public float[] Read(MemoryBuffer1D<float, Stride1D.Dense> b, int n)
    {
        var a = new float[n];
        if (n > 0) b.View.SubView(0, n).CopyToCPU(a);
        return a;
    }

    /// <summary>Uploads <paramref name="ws"/> as one stack (each padded to 16-byte rows).</summary>
    public (MemoryBuffer1D<Chunk16, Stride1D.Dense> Buffer, GpuMatrix Matrix) Upload(params WeightMatrix[] ws)
    {
        var w0 = ws[0];
        long per = GpuMatrix.ChunksFor(w0);
        var b = Accelerator.Allocate1D<Chunk16>(Math.Max(1, per * ws.Length));
        for (int i = 0; i < ws.Length; i++) GpuMatrix.Upload(Stream, ws[i], b.View, i * per);
        return (b, new GpuMatrix(b.View, w0.Type, w0.Rows, w0.Cols, ws.Length));
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class GpuCollection : ICollectionFixture<GpuFixture>
{
    public const string Name = "gpu";
}

/// <summary>
/// A CPU accelerator with 32-wide warps (one warp per group) whose kernels run the bf16 batched work through the
/// tensor-core kernels with the mma emulated (<see cref="EmulatedAcc"/>): the tiling, fragment layout and epilogues of
/// <see cref="MmaKernels"/> checked without a GPU.
/// </summary>
public sealed class Gpu32Fixture : GpuFixture
{
    public Gpu32Fixture() : base(32, new GpuKernelOptions { TensorCores = true }) { }
}

// Alone, after the parallel collections: its emulated mma (32 OS threads per warp meeting at barriers) beside the gpu
// collection oversubscribes the CI machine's two cores.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Gpu32Collection : ICollectionFixture<Gpu32Fixture>
{
    public const string Name = "gpu32";
}
