using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Tests.Model;

namespace Daop.Tests.Generate;

/// <summary>Models whose routed experts are block-quantized in memory (<see cref="QuantizingSource"/>).</summary>
public class QuantizedModelTests
{
    static readonly int[] Prompt = [3, 17, 42, 99, 7, 11, 5, 23];

    internal static MoeModel Load(string fixture, DType type, bool dequantized = false)
    {
        string dir = TestPaths.Fixture(fixture);
        return MoeModel.FromSource($"{fixture}-{type.Name()}", Path.Combine(dir, "config.json"),
            new QuantizingSource(TensorStore.OpenDirectory(dir), type, dequantized));
    }

    static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(b[i]), $"logit {i} is {b[i]}");
            dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }

    static float[] Logits(MoeModel model, int[] prompt)
    {
        var logits = new float[model.Config.VocabSize * prompt.Length];
        model.Forward(prompt, 0, model.NewCache(), logits);
        return logits;
    }

    /// <summary>
    /// Against fp32 kernels on the same (dequantized) expert weights, only the int8 kernels' quantization of the
    /// activations differs: measured 1 − cosine ≤ 2e-5 on these fixtures, checked at 5e-4.
    /// </summary>
    [Theory]
    [InlineData("mixtral-odd", DType.Q8_0)]
    [InlineData("mixtral-odd", DType.Q4_0)]
    [InlineData("mixtral-odd", DType.MXFP4)]
    [InlineData("qwen2moe-tiny", DType.Q8_0)]
    [InlineData("qwen2moe-tiny", DType.Q4_0)]
    [InlineData("qwen2moe-tiny", DType.MXFP4)]
    public void LogitsMatchFp32KernelsOnTheSameWeights(string fixture, DType type)
    {
        using var reference = Load(fixture, type, dequantized: true);
        using var quant = Load(fixture, type);
        double cos = Cosine(Logits(reference, Prompt), Logits(quant, Prompt));
        Assert.True(1 - cos <= 5e-4, $"{fixture} {type}: 1 − cosine {1 - cos}");
    }

    /// <summary>
    /// The weights' own quantization error, end to end: 1 − cosine against the bf16 model, measured at most 3e-5
    /// (Q8_0), 3.3e-3 (Q4_0) and 8.5e-3 (MXFP4) on these fixtures, checked at 5e-4, 1e-2 and 2.5e-2.
    /// </summary>
    [Theory]
    [InlineData("mixtral-odd", DType.Q8_0, 5e-4)]
    [InlineData("mixtral-odd", DType.Q4_0, 1e-2)]
    [InlineData("mixtral-odd", DType.MXFP4, 2.5e-2)]
    [InlineData("qwen2moe-tiny", DType.Q8_0, 5e-4)]
    [InlineData("qwen2moe-tiny", DType.Q4_0, 1e-2)]
    [InlineData("qwen2moe-tiny", DType.MXFP4, 2.5e-2)]
    public void LogitsTrackThePlainModel(string fixture, DType type, double bound)
    {
        using var plain = MoeModel.Load(TestPaths.Fixture(fixture));
        using var quant = Load(fixture, type);
        double cos = Cosine(Logits(plain, Prompt), Logits(quant, Prompt));
        Assert.True(1 - cos <= bound, $"{fixture} {type}: 1 − cosine {1 - cos}");
    }
}

/// <summary>Decode with block-quantized experts allocates nothing, like the plain model (<see cref="DecodeAllocationTests"/>).</summary>
[Collection("serial-allocation")]
public unsafe class QuantizedAllocationTests
{
    static readonly int[] Prompt = [3, 17, 42, 99, 7];

    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.MXFP4)]
    public void DecodeStepsAllocateNothing(DType type)
    {
        using var model = QuantizedModelTests.Load("mixtral-odd", type);
        var cache = model.NewCache();
        var logits = new float[model.Config.VocabSize];
        model.Forward(Prompt, 0, cache, logits);
        for (int i = 0; i < 4; i++) model.Forward([i + 1], Prompt.Length + i, cache, logits); // warm-up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 4; i < 36; i++) model.Forward([i + 1], Prompt.Length + i, cache, logits);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>The kernels themselves, at one token, a small batch and an fp32-panel batch.</summary>
    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.MXFP4)]
    public void KernelsAllocateNothingOnceWarm(DType type)
    {
        using var gate = new Kernels.BlockWeights(type, 136, 80, 1);
        using var up = new Kernels.BlockWeights(type, 136, 80, 2);
        using var down = new Kernels.BlockWeights(type, 80, 136, 3);
        int[] batches = [1, 3, 40];
        var x = Kernels.NativeWeights.Floats(40 * 80, 4);
        var y = new float[40 * 136];
        var scratch = new float[2 * 40 * 136];
        void Run()
        {
            foreach (int t in batches)
            {
                Daop.Kernels.Cpu.MatMul.Forward(gate.W, x, y, t);
                Daop.Kernels.Cpu.ExpertFfn.Forward(gate.W, up.W, down.W, x, y, t, scratch);
            }
        }
        for (int i = 0; i < 3; i++) Run();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) Run();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
