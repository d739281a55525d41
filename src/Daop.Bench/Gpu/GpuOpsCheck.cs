using Daop.Engine.Schedule;
using Daop.Engine.Device.Gpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

/// <summary>One family of kernel checks: its cases, the worst max |gpu − cpu| / tolerance over them, and that case.</summary>
/// <param name="Name">e.g. "linear bf16 [default]".</param>
/// <param name="Cases">Cases run.</param>
/// <param name="Worst">Largest error over tolerance (≤ 1 passes; +∞ for a NaN or an inexact result that must be exact).</param>
/// <param name="WorstCase">The case that gave <paramref name="Worst"/>.</param>
public sealed record GpuOpCheck(string Name, int Cases, double Worst, string WorstCase)
{
    /// <summary>Whether every case is within its tolerance.</summary>
    public bool Passed => Worst <= 1;
}

/// <summary>
/// Every GPU kernel on an accelerator against the CPU path, the GPU tests' checks as one call (<c>daop bench
/// gpu-ops</c>) for a CUDA machine without .NET: dense Linear (decode GEMV, row, tile and tensor-core kernels), the
/// expert FFN through <see cref="GpuExpertScheduler"/> and <see cref="GpuDevice.Ffn"/> (generic and generated
/// kernels), the generated kernels' own launcher, norms, RoPE, attention, embedding and the element-wise kernels.
/// Each family runs on several kernel sets: the defaults, the fp32 FMA tiles instead of tensor cores, narrower row
/// teams, and generic expert kernels only. Tolerances are the tests'.
/// </summary>
public static partial class GpuOpsCheck
{
    /// <summary>
    /// The kernel sets every family runs on: the defaults, the fp32 FMA tiles instead of tensor cores (where the device has
    /// them) and narrower row teams.
    /// </summary>
    static List<(string Label, GpuKernelOptions Options)> KernelSets(GpuContext accelerator)
    {
        var defaults = GpuKernels.For(accelerator).Options;
        int narrow = defaults.Lanes == 1 ? accelerator.WarpSize : Math.Min(4, accelerator.WarpSize);
        var sets = new List<(string Label, GpuKernelOptions Options)> { ("default", GpuKernelOptions.Default) };
        if (defaults.TensorCores == true) sets.Add(("fma", new GpuKernelOptions { TensorCores = false }));
        sets.Add(($"lanes {narrow}", new GpuKernelOptions { Lanes = narrow }));
        return sets;
    }

    /// <summary>Adds each check to <paramref name="checks"/> and reports it.</summary>
    static Action<GpuOpCheck> Collector(List<GpuOpCheck> checks, Action<GpuOpCheck>? report) => c =>
    {
        checks.Add(c);
        report?.Invoke(c);
    };

    /// <summary>
    /// Runs every check on <paramref name="accelerator"/>, calling <paramref name="report"/> after each family.
    /// <paramref name="small"/> keeps to tiny shapes (for the ILGPU CPU accelerator).
    /// </summary>
    public static IReadOnlyList<GpuOpCheck> Run(GpuContext accelerator, bool small, Action<GpuOpCheck>? report = null)
    {
        var checks = new List<GpuOpCheck>();
        var add = Collector(checks, report);
        var sets = KernelSets(accelerator);
        sets.Add(("generic experts", new GpuKernelOptions { GeneratedExperts = [] }));

        foreach (var (label, options) in sets)
        {
            if (label != "generic experts")
                foreach (var type in Types) add(Linear(accelerator, options, label, type, small));
            foreach (var type in Types) add(RoutedExperts(accelerator, options, label, type, 40, 24, small ? [1, 2, 3, 9] : [1, 2, 3, 9, 40, 70], 8));
            add(DenseFfn(accelerator, options, label, DType.BF16, 40, 24, small ? [1, 3, 9] : [1, 3, 9, 70]));
            if (label is "default" or "generic experts")
                foreach (var (h, i) in GeneratedShapes(small))
                {
                    add(RoutedExperts(accelerator, options, label, DType.BF16, h, i, [1, 2, 3], 3));
                    add(DenseFfn(accelerator, options, label, DType.BF16, h, i, [1]));
                }
            if (label != "generic experts" && !label.StartsWith("fma", StringComparison.Ordinal)) add(Norms(accelerator, options, label, small));
        }
        add(GeneratedForward(accelerator, small));
        add(Attention(accelerator, small));
        add(Routing(accelerator));
        add(Gemv3(accelerator));
        add(Rope(accelerator));
        add(Embed(accelerator));
        add(Elementwise(accelerator));
        return checks;
    }

    static readonly DType[] Types = [DType.BF16, DType.F16, DType.F32];

    static string Name(DType t) => t.Name();

    /// <summary>Worst error over tolerance of one family so far.</summary>
    sealed class Worst(string name)
    {
        int _cases;
        double _worst;
        string _case = "";

        /// <summary>Compares got with want element by element; tol[i] = 0 asks for an exact result.</summary>
        public void Compare(string caseName, ReadOnlySpan<float> got, ReadOnlySpan<double> want, ReadOnlySpan<double> tol)
        {
            _cases++;
            double worst = 0;
            for (int i = 0; i < want.Length; i++)
            {
                double d = Math.Abs(want[i] - got[i]);
                double r = double.IsNaN(d) ? double.PositiveInfinity : tol[i] > 0 ? d / tol[i] : d == 0 ? 0 : double.PositiveInfinity;
                worst = Math.Max(worst, r);
            }
            if (worst >= _worst) { _worst = worst; _case = caseName; }
        }

        public GpuOpCheck Result => new(name, _cases, _worst, _case);
    }

    static GpuArray<float> Upload(GpuContext acc, float[] data)
    {
        var b = acc.Allocate1D<float>(Math.Max(4, (data.Length + 3) / 4 * 4));
        b.MemSetToZero();
        if (data.Length > 0) b.View.SubView(0, data.Length).CopyFromCPU(acc.DefaultStream, data);
        return b;
    }

    static GpuArray<int> Upload(GpuContext acc, int[] data)
    {
        var b = acc.Allocate1D<int>(Math.Max(4, data.Length));
        b.View.SubView(0, data.Length).CopyFromCPU(acc.DefaultStream, data);
        return b;
    }

    static float[] Read(GpuContext acc, GpuArray<float> b, int n)
    {
        acc.Synchronize();
        var a = new float[n];
        if (n > 0) b.View.SubView(0, n).CopyToCPU(acc.DefaultStream, a);
        return a;
    }

    /// <summary>Uploads <paramref name="ws"/> as one stack of padded rows.</summary>
    static (GpuArray<Chunk16> Buffer, GpuMatrix Matrix) Upload(GpuContext acc, params WeightMatrix[] ws)
    {
        long per = GpuMatrix.ChunksFor(ws[0]);
        var b = acc.Allocate1D<Chunk16>(Math.Max(1, per * ws.Length));
        for (int i = 0; i < ws.Length; i++) GpuMatrix.Upload(acc.DefaultStream, ws[i], b.View, i * per);
        return (b, new GpuMatrix(b.View, ws[0].Type, ws[0].Rows, ws[0].Cols, ws.Length));
    }

    /// <summary>
    /// y = x·Wᵀ (+ bias) for 1 token (decode GEMV), 2–4 (row kernel) and more (tile or tensor-core kernels), against a
    /// double reference within 1e-5 · Σ|x·w| (2e-5 on the tensor cores, whose activations are split into bf16 hi + lo).
    /// </summary>
    static GpuOpCheck Linear(GpuContext acc, GpuKernelOptions options, string label, DType type, bool small) =>
        Linear(acc, options, label, type, small ? [(7, 33), (80, 136)] : [(7, 33), (80, 136), (136, 80), (1024, 4096), (4096, 1024)],
            small ? [1, 3, 5, 33] : [1, 2, 4, 5, 33, 100]);

    static GpuOpCheck Linear(GpuContext acc, GpuKernelOptions options, string label, DType type, (int Rows, int Cols)[] shapes, int[] tokenCounts)
    {
        var k = GpuKernels.For(acc, options);
        var worst = new Worst($"linear {Name(type)} [{label}]");
        foreach (var (rows, cols) in shapes)
        {
            using var w = BenchMatrix.Random(type, rows, cols, (uint)(rows * 31 + cols), 1f);
            var (wb, m) = Upload(acc, w.W);
            using var _ = wb;
            var bias = RandomWeights.Floats(rows, 9);
            using var bb = Upload(acc, bias);
            var widened = Enumerable.Range(0, rows).Select(w.Row).ToArray();
            foreach (int tokens in tokenCounts)
            {
                var x = RandomWeights.Floats(tokens * cols, 7);
                var dot = new double[tokens * rows];
                var mag = new double[tokens * rows];
                Parallel.For(0, rows, r =>
                {
                    for (int t = 0; t < tokens; t++)
                    {
                        double s = 0, a = 0;
                        for (int c = 0; c < cols; c++) { double p = (double)x[t * cols + c] * widened[r][c]; s += p; a += Math.Abs(p); }
                        dot[t * rows + r] = s;
                        mag[t * rows + r] = a;
                    }
                });
                double rel = k.BatchesOnTensorCores(type) && tokens > GpuKernels.RowTokens ? 2e-5 : 1e-5;
                using var xb = Upload(acc, x);
                using var yb = acc.Allocate1D<float>(Math.Max(4, tokens * rows));
                foreach (bool withBias in new[] { false, true })
                {
                    k.Gemv(acc.DefaultStream, m, xb.View, yb.View, tokens, withBias ? bb.View : null);
                    var got = Read(acc, yb, tokens * rows);
                    var want = dot.Select((d, i) => d + (withBias ? bias[i % rows] : 0)).ToArray();
                    var tol = mag.Select((a, i) => rel * (a + (withBias ? Math.Abs(bias[i % rows]) : 0)) + 1e-30).ToArray();
                    worst.Compare($"{rows}x{cols} T={tokens}{(withBias ? " +bias" : "")}", got, want, tol);
                }
            }
        }
        return worst.Result;
    }
}
