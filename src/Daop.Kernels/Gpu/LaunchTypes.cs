// Host-side launcher types of the kernels loaded with Accelerator.LoadKernel (stream, launch shape, then the kernel's
// parameters), shared by the op classes of GpuKernels and the generated expert kernels that stand in for row kernels.

global using GemvLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.RowArgs>;
global using Gemv3Launch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.RowArgs, int, int>;
global using GateUpLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>,
    ILGPU.ArrayView<float>, Daop.Kernels.Gpu.RowArgs>;
global using DownLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    Daop.Kernels.Gpu.RowArgs>;
global using TileLinearLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
global using TileGateUpLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>,
    ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
global using TileDownLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    Daop.Kernels.Gpu.TileArgs>;
global using MmaSplitLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, Daop.Kernels.Gpu.TileArgs>;
global using MmaLinearLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
global using MmaGateUpLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>,
    Daop.Kernels.Gpu.TileArgs>;
global using MmaDownLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
