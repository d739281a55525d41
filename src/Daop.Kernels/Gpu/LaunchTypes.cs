// Host-side launcher types of the kernels bound with KernelSource.Bind (stream, launch shape, then the kernel's
// parameters), shared by the op classes of GpuKernels and the generated expert kernels that stand in for row kernels.

global using GemvLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.RowArgs>;
global using Gemv3Launch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.RowArgs, int, int>;
global using GateUpLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.RowArgs>;
global using DownLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.RowArgs>;
global using GateUpBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.RowArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
global using DownBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.RowArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
global using TileLinearLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs>;
global using TileGateUpLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs>;
global using TileDownLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.TileArgs>;
global using MmaSplitLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.TileArgs>;
global using MmaLinearLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs>;
global using MmaGateUpLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.TileArgs>;
global using MmaDownLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs>;
global using TileGateUpBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
global using TileDownBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Float4>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
global using MmaGateUpBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
global using MmaDownBiasedLaunch = System.Action<Daop.Kernels.Gpu.GpuStream, ILGPU.KernelConfig, Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>,
    Daop.Kernels.Gpu.GpuView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.GpuView<int>, Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.GpuView<float>,
    Daop.Kernels.Gpu.GpuView<float>, Daop.Kernels.Gpu.TileArgs, Daop.Kernels.Gpu.ExpertBiasArgs>;
