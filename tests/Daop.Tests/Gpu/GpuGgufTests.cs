using Daop.Engine.Model;
using Daop.Tests.Load.Gguf;

namespace Daop.Tests.Gpu;

/// <summary>
/// GGUF models on the GPU path (ILGPU's CPU accelerator): the weights a GGUF file maps (expert views into stacked tensors,
/// q/k rows restored into native memory) upload and compute as the CPU path does. Tolerance as in the goldens: 1e-4.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuGgufTests(GpuFixture gpu)
{
    [Theory]
    [InlineData("mixtral-odd-bf16.gguf", "mixtral-odd")]
    [InlineData("qwen2moe-tiny-bf16.gguf", "qwen2moe-tiny")]
    public void GgufLogitsMatchTheCpuPath(string file, string fixture)
    {
        string path = GgufFixtureFiles.Committed(file);
        using var cpu = MoeModel.Load(path, new ModelOptions { ContextLength = 64 });
        using var model = gpu.LoadModel(path);
        var want = LlamaCppReference.DaopLogits(cpu, fixture);
        var got = LlamaCppReference.DaopLogits(model, fixture);
        int v = cpu.Config.VocabSize;
        for (int r = 0; r < want.Length / v; r++)
            LogitsAssert.Close(want.AsSpan(r * v, v), got.AsSpan(r * v, v), $"{file} position {r}: gpu vs cpu");
    }
}
