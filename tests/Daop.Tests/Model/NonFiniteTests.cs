using System.Buffers.Binary;
using Daop.Engine.Generate;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>NaN or ∞ from the weights ends generation with an error naming where it appeared, never as a silent stop.</summary>
public class NonFiniteModelTests
{
    const string Poisoned = "model.layers.1.self_attn.o_proj.weight";

    // A copy of mixtral-tiny with one bf16 element of layer 1's o_proj set to NaN (or +∞).
    internal static TempModelDir PoisonedModel(ushort bits = 0x7FC0, string? fixture = null)
    {
        var dir = new TempModelDir(fixture ?? TestPaths.Fixture("mixtral-tiny"));
        string file = Path.Combine(dir.Path, "model.safetensors");
        long offset;
        using (var st = TensorStore.OpenFile(file))
        {
            var e = st.Entry(Poisoned);
            long headerLen = BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(file).AsSpan(0, 8));
            offset = 8 + headerLen + e.Offset + 2 * 5; // element 5
        }
        using var fs = new FileStream(file, FileMode.Open, FileAccess.Write);
        fs.Position = offset;
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, bits);
        fs.Write(b);
        return dir;
    }

    [Fact]
    public void CheckedForwardNamesTheLayerAndStep()
    {
        using var dir = PoisonedModel();
        using var model = MoeModel.Load(dir.Path, new ModelOptions { CheckFinite = true });
        var e = Assert.Throws<NonFiniteException>(() => model.Forward([1, 2, 3], 0, model.NewCache(), new float[model.Config.VocabSize]));
        Assert.Equal(1, e.Layer);
        Assert.Equal("attention", e.Stage);
        Assert.Contains("layer 1's attention", e.Message);
    }

    [Fact]
    public void UncheckedForwardStopsAtTheNextRouter()
    {
        using var dir = PoisonedModel(0x7F80); // +∞
        using var model = MoeModel.Load(dir.Path);
        var e = Assert.Throws<NonFiniteException>(() => model.Forward([1, 2, 3], 0, model.NewCache(), new float[model.Config.VocabSize]));
        Assert.Equal(1, e.Layer);
        Assert.Equal("router logits", e.Stage);
        Assert.Contains("inspect --check", e.Message);
    }

    [Fact]
    public void GenerationFailsInsteadOfStopping()
    {
        using var dir = PoisonedModel();
        using var model = MoeModel.Load(dir.Path);
        var g = new Generator(model);
        Assert.Throws<NonFiniteException>(() => g.Generate([1, 2, 3], new SamplingOptions { MaxNewTokens = 4 }).ToList());
    }

    [Fact]
    public void WeightScanFindsTheElement()
    {
        using var dir = PoisonedModel();
        using var st = TensorStore.OpenDirectory(dir.Path);
        var bad = st.Names.Where(n => st.FirstNonFinite(n) >= 0).ToList();
        Assert.Equal([Poisoned], bad);
        Assert.Equal(5, st.FirstNonFinite(Poisoned));
    }

    [Fact]
    public void ModelCheckNamesTheTensorAndTheStep()
    {
        using var dir = PoisonedModel();
        var report = ModelCheck.Run(dir.Path, [1, 2, 3, 4]);
        Assert.False(report.Ok);
        Assert.Equal([$"{Poisoned}: element 5"], report.NonFiniteTensors);
        Assert.Contains("layer 1's attention", report.ForwardProblem);
        var clean = ModelCheck.Run(TestPaths.Fixture("mixtral-tiny"), [1, 2, 3, 4]);
        Assert.True(clean.Ok);
        Assert.True(clean.TensorsScanned > 20);
    }
}
