using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.PtxCompiler;

/// <summary>
/// <c>daop-ptx OUTPUT.ptxpack</c>: every kernel of the catalog compiled to PTX offline (ILGPU's PTX backend, no GPU) and
/// written as one <see cref="PtxPack"/>. <c>daop-ptx --compare-targets</c> prints how the PTX of a few kernels for
/// sm_80 and sm_90 differ (the check behind <see cref="Architecture"/>).
/// </summary>
static class Program
{
    // One target, sm_80 with PTX ISA 8.0. `daop-ptx --compare-targets` compiles MmaGateUp, Gemv1 and Attention for SM_80
    // and SM_90 with ISA 8.8 (the newest ILGPU 1.5.3 knows): the texts are the same, even the `.target sm_80` line
    // (ILGPU 1.5.3 emits no sm_90-only instruction), once the IR node ids in names are set aside. So one sm_80 PTX serves
    // sm_80, sm_86, sm_89 and sm_90: the driver JIT-compiles it forward. ISA 8.8 and 8.0 differ only in the `.version`
    // line (and, in Attention, the order of two independent register moves, which also varies from run to run), so 8.0
    // it is: any driver that runs an sm_80+ GPU (CUDA 11.0 on) loads it, where 8.8 needs CUDA 12.9 (r575).
    static readonly CudaArchitecture Architecture = CudaArchitecture.SM_80;
    static readonly CudaInstructionSet InstructionSet = CudaInstructionSet.ISA_80;

    /// <summary>The kernels to compile, by catalog key: every kernel the engine can launch (<see cref="GpuKernelCatalog"/>).</summary>
    static IReadOnlyList<(string Key, MethodInfo Method)> Kernels() =>
        GpuKernelCatalog.Entries.Select(e => (e.Key, e.Kernel.Method)).ToList();

    static int Main(string[] args)
    {
        try
        {
            if (args is ["--compare-targets"]) return CompareTargets();
            int threads = 1;
            if (args is ["--threads", var n, ..] && int.TryParse(n, out threads) && threads >= 1) args = args[2..];
            if (args.Length != 1 || args[0].StartsWith('-'))
            {
                Console.Error.WriteLine("usage: daop-ptx [--threads N] OUTPUT.ptxpack   (or daop-ptx --compare-targets)");
                return 2;
            }
            return Build(args[0], threads);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"daop-ptx: {e.Message}");
            return 1;
        }
    }

    static int Build(string output, int threads)
    {
        var watch = Stopwatch.StartNew();
        var kernels = Kernels();
        var images = CompileAll(kernels, Architecture, InstructionSet, threads);
        string target = TargetOf(images);
        double compileSeconds = watch.Elapsed.TotalSeconds;

        // Written beside the output and moved over it, so an interrupted build never leaves a partial pack that MSBuild
        // would take as up to date.
        string full = Path.GetFullPath(output), temp = full + ".tmp";
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        using (var file = File.Create(temp)) PtxPack.Write(file, target, images, BuildId());
        File.Move(temp, full, overwrite: true);

        long ptxBytes = images.Sum(i => (long)i.Ptx.Length);
        Console.WriteLine($"daop-ptx: {images.Count} kernels, {target}, {ptxBytes / 1024.0:F0} KiB of PTX -> {output} ({new FileInfo(full).Length / 1024.0:F0} KiB), {watch.Elapsed.TotalSeconds:F1} s ({compileSeconds:F1} s compiling on {Math.Min(threads, images.Count)} thread(s))");
        return 0;
    }

    /// <summary>
    /// Compiles <paramref name="kernels"/> on <paramref name="threads"/> workers, each with its own ILGPU context and PTX
    /// backend (a backend compiles one kernel at a time). One is the default: on 2 cores all 63 kernels took 17.6 to
    /// 19.8 s on one thread and 22 to 26 s on two (ILGPU's compile contends on state shared across contexts). The PTX is not byte-for-byte reproducible: ILGPU names symbols by IR node
    /// ids from a process-wide counter (a context per kernel does not help), so they depend on the compile order.
    /// </summary>
    static List<PtxImage> CompileAll(IReadOnlyList<(string Key, MethodInfo Method)> kernels, CudaArchitecture architecture, CudaInstructionSet isa, int threads = 1)
    {
        var results = new PtxImage[kernels.Count];
        int next = -1;
        var errors = new ConcurrentQueue<Exception>();
        int workers = Math.Clamp(threads, 1, Math.Max(1, kernels.Count));
        var pool = Enumerable.Range(0, workers).Select(_ => new Thread(() =>
        {
            try
            {
                using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
                using var backend = new PTXBackend(ctx, architecture, isa, null!);
                for (int i; (i = Interlocked.Increment(ref next)) < kernels.Count && errors.IsEmpty;)
                {
                    var (key, method) = kernels[i];
                    string ptx;
                    try { ptx = Compile(backend, method); }
                    catch (Exception e) { throw new InvalidOperationException($"kernel '{key}' ({method.DeclaringType?.Name}.{method.Name}) failed to compile to PTX: {e.Message}", e); }
                    var (entry, sizes) = PtxPack.ParseEntry(ptx);
                    results[i] = new PtxImage(key, entry, sizes, ptx);
                }
            }
            catch (Exception e) { errors.Enqueue(e); }
        }, maxStackSize: 16 << 20)).ToList();
        foreach (var t in pool) t.Start();
        foreach (var t in pool) t.Join();
        if (!errors.IsEmpty) throw errors.Count == 1 ? errors.First() : new AggregateException(errors);
        return [.. results];
    }

    static string Compile(PTXBackend backend, MethodInfo method)
    {
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        return ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
    }

    /// <summary>The target as the PTX states it (e.g. <c>sm_80 ptx8.8</c>), the same in every image.</summary>
    static string TargetOf(IReadOnlyList<PtxImage> images)
    {
        var targets = images.Select(i => $"{Directive(i, ".target")} ptx{Directive(i, ".version")}").Distinct().ToList();
        if (targets.Count != 1) throw new InvalidOperationException($"the kernels' PTX states {targets.Count} targets: {string.Join(", ", targets)}.");
        return targets[0];
    }

    static string Directive(PtxImage image, string name)
    {
        foreach (var line in image.Ptx.AsSpan().EnumerateLines())
        {
            var t = line.Trim();
            if (t.StartsWith(name, StringComparison.Ordinal) && t.Length > name.Length && char.IsWhiteSpace(t[name.Length]))
                return t[name.Length..].Trim().ToString().Split(',')[0].Trim();
        }
        throw new InvalidOperationException($"the PTX of '{image.Key}' has no {name} line.");
    }

    /// <summary>Which build of the kernels the pack holds: the kernels assembly's version id and ILGPU's version.</summary>
    static string BuildId()
    {
        var kernels = typeof(GpuKernels).Assembly;
        return $"Daop.Kernels {kernels.ManifestModule.ModuleVersionId}; ILGPU {typeof(Context).Assembly.GetName().Version}";
    }

    /// <summary>
    /// Compiles a few kernels for sm_80 and sm_90 (ISA 8.8), and for the shipped ISA and ISA 8.8 (sm_80), and
    /// prints every line where their PTX differs.
    /// </summary>
    static int CompareTargets()
    {
        var names = new[] { "MmaGateUp", "Gemv1", "Attention" };
        var kernels = Kernels().Where(k => names.Contains(k.Key)).ToList();
        var shipped = CompileAll(kernels, Architecture, InstructionSet);
        bool sameCode = Compare(names, CompileAll(kernels, Architecture, CudaInstructionSet.ISA_88), CompileAll(kernels, CudaArchitecture.SM_90, CudaInstructionSet.ISA_88));
        Console.WriteLine(sameCode ? "sm_80 vs sm_90: only .target/.version lines differ" : "sm_80 vs sm_90: the code differs");
        sameCode = Compare(names, shipped, CompileAll(kernels, Architecture, CudaInstructionSet.ISA_88));
        Console.WriteLine(sameCode ? "ISA 8.0 vs 8.8: only .target/.version lines differ" : "ISA 8.0 vs 8.8: the code differs");
        return 0;
    }

    static bool Compare(string[] names, List<PtxImage> first, List<PtxImage> second)
    {
        bool onlyHeader = true;
        foreach (var name in names)
        {
            // ILGPU numbers every name with its IR node id, which depends on what the context compiled before.
            string[] a = Normalize(first.Single(i => i.Key == name).Ptx), b = Normalize(second.Single(i => i.Key == name).Ptx);
            var differing = Enumerable.Range(0, Math.Max(a.Length, b.Length))
                .Where(i => i >= a.Length || i >= b.Length || a[i] != b[i]).ToList();
            Console.WriteLine($"{name}: {a.Length} / {b.Length} lines, {differing.Count} differ; headers '{Header(a)}' | '{Header(b)}'");
            foreach (int i in differing)
            {
                string la = i < a.Length ? a[i].Trim() : "(none)", lb = i < b.Length ? b[i].Trim() : "(none)";
                if (!la.StartsWith(".target", StringComparison.Ordinal) && !la.StartsWith(".version", StringComparison.Ordinal)) onlyHeader = false;
                if (differing.IndexOf(i) < 10) Console.WriteLine($"  line {i + 1}: '{la}' | '{lb}'");
            }
        }
        return onlyHeader;
    }

    static string Header(string[] lines) => string.Join("; ", lines.Take(12).Select(l => l.Trim()).Where(l => l.StartsWith(".target", StringComparison.Ordinal) || l.StartsWith(".version", StringComparison.Ordinal)));

    static string[] Normalize(string ptx) => System.Text.RegularExpressions.Regex.Replace(ptx, @"(?<!\.target sm)_\d+\b", "_N").Split('\n');
}
