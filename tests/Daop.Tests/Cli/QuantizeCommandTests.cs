using System.Globalization;
using Daop.Engine.Api;
using Daop.Engine.Schedule;
using Daop.Tests.Model;

namespace Daop.Tests.Cli;

/// <summary>
/// <c>daop quantize</c> and the weight types on the other commands: the folder it writes inspects as q4_0 with nothing
/// converted at load, <c>inspect</c> shows the expert type and bytes and, under a VRAM budget, ~16/4.5 as many q4_0 experts
/// as bf16 ones; bad values are one error line.
/// </summary>
[Collection(ConsoleCollection.Name)]
public class QuantizeCommandTests
{
    [Fact]
    public async Task InspectCountsExpertsInTheirStoredBytes()
    {
        // The dense part of the embedded model at --context 256, plus room for 12 bf16 experts.
        long budget;
        using (var m = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ContextLength = 256 }))
            budget = OffloadBudget.DenseBytes(m.Engine, 256) + 12 * m.Info.ExpertBytes;
        string b = budget.ToString(CultureInfo.InvariantCulture);
        var bf16 = await CliRunner.Run("inspect", "--context", "256", "--vram-budget", b);
        var q4 = await CliRunner.Run("inspect", "--context", "256", "--vram-budget", b, "--expert-dtype", "q4_0");
        Assert.True(bf16.ExitCode == 0 && q4.ExitCode == 0, bf16.Err + q4.Err);
        Assert.Contains("weight types   experts bf16, dense (attention, shared/dense MLPs) bf16, embedding/LM head/routers bf16", bf16.Out);
        Assert.Contains("weight types   experts q4_0, dense (attention, shared/dense MLPs) bf16, embedding/LM head/routers bf16", q4.Out);
        Assert.Contains("(384.0 KiB each, bf16)", bf16.Out);
        Assert.Contains("(108.0 KiB each, q4_0)", q4.Out);                      // 384 / 108 = 16 / 4.5
        Assert.Contains("load           converted 144 matrices (experts to q4_0)", q4.Out);
        Assert.DoesNotContain("load ", bf16.Out);
        Assert.Contains("expert slot  384.0 KiB (gate bf16, up bf16, down bf16, rows padded to 16 bytes)", bf16.Out);
        Assert.Contains("expert slot  108.0 KiB (gate q4_0, up q4_0, down q4_0, rows padded to 16 bytes)", q4.Out);
        Assert.Contains("fits         12 of 48 experts", bf16.Out);
        Assert.DoesNotContain("vs bf16", bf16.Out);
        Assert.Contains("fits         40 of 48 experts", q4.Out);                 // floor(12 · 16 / 4.5) = 42, 2 of them staging
        Assert.Contains("staging      2 slots", q4.Out);
        Assert.DoesNotContain("staging", bf16.Out);                                 // 12 bf16 experts: too few to stream
        Assert.Contains("vs bf16      12 experts in 384.0 KiB bf16 slots: q4_0 fits 3.33x as many", q4.Out);
    }

    [Fact]
    public async Task QuantizeWritesAFolderThatInspectsAsQ4()
    {
        string dir = QuantizedModels.NewDir();
        var r = await CliRunner.Run("quantize", TestPaths.DefaultModel, dir, "--expert-dtype", "q4_0", "--dense-dtype", "q8_0");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains($"wrote {dir}: 189 tensors, 168 converted (experts q4_0, dense q8_0)", r.Out);
        Assert.Contains("[daop] wrote model.safetensors", r.Err);
        var info = await CliRunner.Run("inspect", dir);
        Assert.True(info.ExitCode == 0, info.Err);
        Assert.Contains("weight types   experts q4_0, dense (attention, shared/dense MLPs) q8_0, embedding/LM head/routers bf16", info.Out);
        Assert.Contains("(108.0 KiB each, q4_0)", info.Out);
        Assert.DoesNotContain("load ", info.Out);                               // mapped as stored: nothing converted

        var again = await CliRunner.Run("quantize", TestPaths.DefaultModel, dir, "--expert-dtype", "q4_0");
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("already holds a model", again.Err);
    }

    [Theory]
    [InlineData("--expert-dtype must be one of q4_0, q8_0, mxfp4, bf16, f16, f32 (q2_K, q3_K, q4_K, q5_K, q6_K, q4_1, q5_0, q5_1 and iq4_nl are read from GGUF files as they are; Daop does not produce them), got 'q3_k'", "quantize", "m", "o", "--expert-dtype", "q3_k")]
    [InlineData("got 'q5_0'", "run", "-p", "x", "--expert-dtype", "q5_0")]
    [InlineData("got 'q4_k'", "run", "-p", "x", "--expert-dtype", "q4_k")]
    [InlineData("--dense-dtype must be one of", "run", "-p", "x", "--dense-dtype", "int8")]
    [InlineData("--expert-dtype must be one of", "inspect", "--expert-dtype", "bf8")]
    [InlineData("give --expert-dtype, --dense-dtype or both", "quantize", "m", "o")]
    [InlineData("--max-shard-size must be", "quantize", "m", "o", "--expert-dtype", "q4_0", "--max-shard-size", "10")]
    public async Task BadWeightTypesAreOneErrorLine(string message, params string[] args)
    {
        var r = await CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Out);
        Assert.Contains(message, Assert.Single(r.ErrLines));
    }

    [Fact]
    public async Task ABlockFormatIsNotRequantizedOnTheCommandLine()
    {
        var r = await CliRunner.Run("inspect", QuantizedModels.EmbeddedQ4, "--expert-dtype", "mxfp4");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is stored as q4_0; --expert-dtype mxfp4", Assert.Single(r.ErrLines));
    }
}
