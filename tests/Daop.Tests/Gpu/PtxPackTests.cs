using System.Reflection;
using System.Runtime.CompilerServices;
using Daop.Engine.Device.Gpu.Cuda;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.Tests.Gpu;

/// <summary>
/// The precompiled-kernel pack (PtxPack): its format round-trips and refuses damaged input with a message, ParseEntry
/// reads ILGPU's PTX parameter sizes as the kernels' parameters have them, and the pack embedded in Daop.Engine holds
/// every kernel of the catalog with the sizes of its parameters.
/// </summary>
public class PtxPackTests
{
    static readonly PtxImage[] Images =
    [
        new("Add", "Kernel_Add", [16, 16, 4], ".version 8.0\n.target sm_80\n.entry Kernel_Add(...)\n"),
        new("Gemv1.Q4_K", "Kernel_Gemv1", [16, 16, 16, 16, 16, 48], new string('x', 100_000) + " ünïcode"),
        new("NoParams", "Kernel_None", [], ""),
    ];

    static byte[] Pack(string target = "sm_80 ptx8.0", string buildId = "test build")
    {
        var ms = new MemoryStream();
        PtxPack.Write(ms, target, Images, buildId);
        return ms.ToArray();
    }

    [Fact]
    public void RoundTrips()
    {
        var bytes = Pack();
        Assert.True(bytes.Length < 2000, $"{bytes.Length} bytes: the repetitive PTX should compress");
        var read = PtxPack.Read(new MemoryStream(bytes));
        Assert.Equal("sm_80 ptx8.0", read.Target);
        Assert.Equal("test build", read.BuildId);
        Assert.Equal(Images.Select(i => i.Key).Order(), read.Images.Keys.Order());
        foreach (var image in Images)
        {
            var r = read.Images[image.Key];
            Assert.Equal(image.EntryName, r.EntryName);
            Assert.Equal(image.ParameterSizes, r.ParameterSizes);
            Assert.Equal(image.Ptx, r.Ptx);
        }
    }

    [Fact]
    public void WriteRefusesDuplicateKeys()
    {
        var e = Assert.Throws<ArgumentException>(() => PtxPack.Write(new MemoryStream(), "t", [Images[0], Images[0]]));
        Assert.Contains("'Add' appears twice", e.Message);
    }

    [Fact]
    public void RejectsEveryTruncation()
    {
        var bytes = Pack();
        // Every prefix: inside the header, inside the compressed stream, one byte short.
        foreach (int length in Enumerable.Range(0, bytes.Length).Where(n => n < 40 || n % 7 == 0 || n == bytes.Length - 1))
        {
            var e = Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(bytes[..length])));
            Assert.StartsWith("PTX pack:", e.Message);
        }
    }

    [Fact]
    public void RejectsWrongMagicAndVersion()
    {
        var bytes = Pack();
        var notPack = (byte[])bytes.Clone();
        notPack[0] = (byte)'X';
        Assert.Contains("not a PTX pack", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(notPack))).Message);
        var future = (byte[])bytes.Clone();
        future[8] = 99;
        Assert.Contains("format version 99", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(future))).Message);
    }

    [Fact]
    public void RejectsCorruptData()
    {
        var bytes = Pack();
        // Flipped bytes across the compressed body: each read fails with a pack error (never another exception, a hang
        // or a silently different kernel).
        var rng = new Random(7);
        for (int trial = 0; trial < 200; trial++)
        {
            var bad = (byte[])bytes.Clone();
            int at = rng.Next(12, bad.Length);
            bad[at] ^= (byte)rng.Next(1, 256);
            try
            {
                var read = PtxPack.Read(new MemoryStream(bad));
                // Brotli can occasionally decode a flipped byte into other valid data: then nothing may have been lost.
                Assert.Equal(Images.Length, read.Images.Count);
            }
            catch (InvalidDataException e) { Assert.StartsWith("PTX pack:", e.Message); }
        }
        // Bytes after the compressed stream, a body longer or shorter than the header says, data after the last image,
        // and a huge count (refused before anything is allocated for it).
        Assert.Contains("1 bytes after the compressed data", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream([.. bytes, 0]))).Message);
        Assert.Contains("longer than the 1 bytes its header states", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(RawPack(w => w.Write("tt"), 1)))).Message);
        Assert.Contains("3 bytes of data, its header states 1000", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(RawPack(w => w.Write("tt"), 1000)))).Message);
        Assert.Contains("data after the last kernel image", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(RawPack(w =>
        {
            w.Write("t"); w.Write("b"); w.Write(0); w.Write((byte)1);
        })))).Message);
        Assert.Contains("image count is 2147483647", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(RawPack(w =>
        {
            w.Write("t"); w.Write("b"); w.Write(int.MaxValue);
        })))).Message);
        Assert.Contains("parameter 0 has size -4", Assert.Throws<InvalidDataException>(() => PtxPack.Read(new MemoryStream(RawPack(w =>
        {
            w.Write("t"); w.Write("b"); w.Write(1); w.Write("K"); w.Write("E"); w.Write(1); w.Write(-4); w.Write("ptx");
        })))).Message);
    }

    /// <summary>A pack of the current format around a body written by <paramref name="body"/>, its header stating
    /// <paramref name="statedLength"/> (default: the body's length).</summary>
    static byte[] RawPack(Action<BinaryWriter> body, long statedLength = -1)
    {
        var b = new MemoryStream();
        using (var w = new BinaryWriter(b, System.Text.Encoding.UTF8, leaveOpen: true)) body(w);
        var raw = b.ToArray();
        var o = new MemoryStream();
        o.Write("DAOPPTX\0"u8);
        o.Write(BitConverter.GetBytes(PtxPack.FormatVersion));
        o.Write(BitConverter.GetBytes(statedLength < 0 ? raw.Length : statedLength));
        var c = new byte[System.IO.Compression.BrotliEncoder.GetMaxCompressedLength(raw.Length)];
        Assert.True(System.IO.Compression.BrotliEncoder.TryCompress(raw, c, out int n));
        o.Write(c, 0, n);
        return o.ToArray();
    }

    [Fact]
    public void ParseEntryReadsIlgpuPtx()
    {
        var add = Compile(typeof(VectorKernels).GetMethod(nameof(VectorKernels.Add))!);
        var (entry, sizes) = PtxPack.ParseEntry(add);
        Assert.Contains($".entry {entry}(", add);
        Assert.Equal(new[] { 16, 16, 4 }, sizes); // ArrayView<float> acc, ArrayView<float> x, int n

        var gateUp = Compile(GpuKernelCatalog.Entries.Single(e => e.Key == "TileGateUp.BF16").Kernel.Method);
        // ArrayView<Chunk16> wg, wu, ArrayView<float> x, ArrayView<Float4> x4, ArrayView<int> index, ArrayView<float> h, TileArgs a.
        Assert.Equal(new[] { 16, 16, 16, 16, 16, 16, Unsafe.SizeOf<TileArgs>() }, PtxPack.ParseEntry(gateUp).ParameterSizes);
        Assert.Equal(36, Unsafe.SizeOf<TileArgs>());
    }

    [Fact]
    public void ParseEntryReadsEveryParameterForm()
    {
        const string ptx = """
            .version 8.0
            .target sm_80
            .address_size 64
            .visible .entry Kernel_X(
            	.param .u64 p0,          // a pointer
            	.param .align 8 .b8 p1[16],
            	.param .b32 p2,
            	.param .f64 p3,
            	.param .u16 p4,
            	.param .align 4 .b8 p5[36],
            	.param .u64 .ptr .global .align 16 p6
            )
            {
            	ret;
            }
            """;
        var (entry, sizes) = PtxPack.ParseEntry(ptx);
        Assert.Equal("Kernel_X", entry);
        Assert.Equal(new[] { 8, 16, 4, 8, 2, 36, 8 }, sizes);
        Assert.Empty(PtxPack.ParseEntry(".entry K()\n{\n}").ParameterSizes);
    }

    [Fact]
    public void ParseEntryNeedsExactlyOneEntry()
    {
        Assert.Contains("found 0", Assert.Throws<FormatException>(() => PtxPack.ParseEntry(".version 8.0\n.func f()\n{\n}")).Message);
        var two = Assert.Throws<FormatException>(() => PtxPack.ParseEntry(".entry A(.param .u32 a)\n{\n}\n.entry B()\n{\n}"));
        Assert.Contains("found 2 (A, B)", two.Message);
        var bad = Assert.Throws<FormatException>(() => PtxPack.ParseEntry(".entry A(.param .pred a)\n{\n}"));
        Assert.Contains("'.param .pred a' of .entry A", bad.Message);
        Assert.Contains("no closing ')'", Assert.Throws<FormatException>(() => PtxPack.ParseEntry(".entry A(.param .u32 a")).Message);
    }

    [Fact]
    public void EmbeddedPackHoldsEveryCatalogKernel()
    {
        Assert.Equal("sm_80 ptx8.0", EmbeddedKernels.Target);
        var catalog = GpuKernelCatalog.Entries;
        Assert.Equal(catalog.Select(k => k.Key).Order(), EmbeddedKernels.Keys.Order());
        foreach (var (key, kernel, argumentSizes) in catalog)
        {
            var method = kernel.Method;
            var image = EmbeddedKernels.Find(key);
            Assert.NotNull(image);
            Assert.Equal(key, image.Key);
            Assert.Contains($".entry {image.EntryName}(", image.Ptx);
            Assert.Contains(".target sm_80", image.Ptx);
            // The parameter sizes the launchers rely on: an ArrayView is {pointer, length}, anything else its CLR size.
            var expected = method.GetParameters().Select(p => SizeOf(p.ParameterType)).ToArray();
            Assert.True(expected.SequenceEqual(image.ParameterSizes),
                $"{key}: PTX parameter sizes [{string.Join(", ", image.ParameterSizes)}], the method's [{string.Join(", ", expected)}]");
            // And what the engine's launcher for it passes (checked again when a CUDA GPU binds it).
            Assert.True(argumentSizes.SequenceEqual(image.ParameterSizes),
                $"{key}: PTX parameter sizes [{string.Join(", ", image.ParameterSizes)}], the launcher's [{string.Join(", ", argumentSizes)}]");
        }
        Assert.Null(EmbeddedKernels.Find("NoSuchKernel"));
    }

    [Fact]
    public void MissingResourceIsNamed()
    {
        var e = Assert.Throws<InvalidOperationException>(() => EmbeddedKernels.Load(typeof(PtxPackTests).Assembly, EmbeddedKernels.ResourceName));
        Assert.Contains("(resource 'Daop.Engine.kernels.ptxpack') are missing from Daop.Tests", e.Message);
    }

    static int SizeOf(Type t) =>
        t.IsGenericType && t.GetGenericTypeDefinition() == typeof(ArrayView<>) ? 16
        : (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    static string Compile(MethodInfo method)
    {
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        return ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
    }
}
