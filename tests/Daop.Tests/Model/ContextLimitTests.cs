using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;

namespace Daop.Tests.Model;

/// <summary>A context too large to allocate is refused when the model starts, with a message, not an overflow or OOM later.</summary>
public class ContextLimitTests
{
    static readonly ModelConfig Tiny = ModelFamilies.ReadConfig(Path.Combine(TestPaths.DefaultModel, "config.json")).Config;

    /// <summary>Tiny with <paramref name="layers"/> layers (default: as many as it has) whose attention has the given KV heads and head dim.</summary>
    static ModelConfig Shaped(int? layers = null, int? kvHeads = null, int? headDim = null)
    {
        var a = Tiny.Attention with { KvHeads = kvHeads ?? Tiny.NumKvHeads, HeadDim = headDim ?? Tiny.HeadDim };
        return Tiny with { Layers = Enumerable.Repeat(Tiny.Layers[0] with { Attention = a }, layers ?? Tiny.NumLayers).ToArray() };
    }

    [Fact]
    public void OrdinaryContextsPass()
    {
        ContextLimit.Check(Tiny, 1, kvOnHost: true);
        ContextLimit.Check(Tiny, 4096, kvOnHost: true);
        Assert.Equal(2L * Tiny.NumLayers * 4096 * Tiny.NumKvHeads * Tiny.HeadDim * 4, ContextLimit.KvCacheBytes(Tiny, 4096));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(ContextLimit.MaxPositions + 1)]
    public void OutOfRangeIsRefused(int positions)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ContextLimit.Check(Tiny, positions, kvOnHost: true));
        Assert.Equal("ContextLength", e.ParamName);
        Assert.Contains($"1..{ContextLimit.MaxPositions}", e.Message);
    }

    [Fact]
    public void MoreMemoryThanTheMachineHasIsRefused()
    {
        var deep = Shaped(layers: 100_000); // 100k layers × 16 Mi positions: far beyond any machine
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ContextLimit.Check(deep, ContextLimit.MaxPositions, kvOnHost: true));
        Assert.Equal("ContextLength", e.ParamName);
        Assert.Contains("GiB for the KV cache", e.Message);
        Assert.Contains("use a smaller context length", e.Message);
    }

    [Fact]
    public void OneKvLayerBeyondAnArrayIsRefused()
    {
        var wide = Shaped(kvHeads: 1024, headDim: 1024); // a million floats per position and layer
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ContextLimit.Check(wide, 4096, kvOnHost: true));
        Assert.Contains(".NET array", e.Message);
    }

    [Fact]
    public void KvCacheBytesDoNotOverflow()
    {
        var huge = Shaped(layers: 100_000, kvHeads: 1 << 16, headDim: 1 << 14); // 2 · 10^5 · 2^24 · 2^30 · 4 bytes: past long
        Assert.Equal(long.MaxValue, ContextLimit.KvCacheBytes(huge, ContextLimit.MaxPositions));
    }

    [Fact]
    public void LoadRefusesBeforeAllocating()
    {
        // Before: the RoPE table's int index overflowed or its arrays ran out of memory. The check runs before either.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = ContextLimit.MaxPositions + 1 }));
        Assert.Equal("ContextLength", e.ParamName);
    }
}
