using Daop.Tests.Load.Gguf;

namespace Daop.Tests.Cli;

/// <summary><c>daop run / inspect -m FILE.gguf</c>: the command line takes GGUF files as it takes model folders.</summary>
[Collection(ConsoleCollection.Name)]
public class GgufCliTests
{
    [Fact]
    public async Task InspectShowsTheTensorClassesOfAGgufFile()
    {
        var r = await CliRunner.Run("inspect", GgufFixtureFiles.Committed("qwen2moe-tiny-q8_0c.gguf"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("architecture   qwen2_moe: 3 layers (3 MoE)", r.Out);
        Assert.Contains("gguf           v3, 1 file", r.Out);
        Assert.Matches(@"blk\.\*\.ffn_down_exps\.weight\s+3\s+f16\s", r.Out);   // rows of 48: the converter's f16 fallback
        Assert.Matches(@"blk\.\*\.ffn_gate_exps\.weight\s+3\s+q8_0\s.*8\.50", r.Out);
        Assert.Matches(@"blk\.\*\.ffn_gate_inp\.weight\s+3\s+f32\s", r.Out);
        var (code, json) = await Daop("inspect", "--json", GgufFixtureFiles.Committed("mixtral-tiny-q4_0.gguf"));
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var classes = doc.RootElement.GetProperty("gguf").GetProperty("tensor_classes").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal(3, classes["blk.*.ffn_up_exps.weight"].GetProperty("types").GetProperty("q4_0").GetInt32());
        Assert.Equal(3 * 8 * 96 * 64 / 32 * 18, classes["blk.*.ffn_up_exps.weight"].GetProperty("bytes").GetInt64());
    }

    /// <summary>
    /// A Q4_K_M file under a VRAM budget: the slot holds gate and up as the file's q4_K and the q6_K down projection as
    /// Q8_0, and its size is those formats' bytes (256x256 experts: 2 x 256 rows of 144 bytes + 256 rows of 272).
    /// </summary>
    [Fact]
    public async Task InspectShowsTheGpuFormatsOfAKQuantFilesExperts()
    {
        string file = GgufFixtureFiles.Committed("tiny-mixtral-code-1l-q4_k_m.gguf");
        var r = await CliRunner.Run("inspect", file, "--vram-budget", "7MiB");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("expert slot  140.0 KiB (gate q4_K, up q4_K, down q8_0, rows padded to 16 bytes)", r.Out);
        var (code, json) = await Daop("inspect", "--json", file, "--vram-budget", "7MiB");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var plan = doc.RootElement.GetProperty("vram");
        Assert.Equal("gate q4_K, up q4_K, down q8_0", plan.GetProperty("slot_formats").GetString());
        Assert.Equal(2 * 256 * 144 + 256 * 272, plan.GetProperty("slot_bytes").GetInt64());
    }

    [Fact]
    public async Task RunGeneratesFromAGgufFile()
    {
        var (code, json) = await Daop("run", "-m", GgufFixtureFiles.Committed("olmoe-tiny-mha-bf16.gguf"), "-p", "ab", "-n", "4", "--json");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(4, doc.RootElement.GetProperty("generated_tokens").GetInt32());
    }

    // JSON goes to the process's stdout stream, which the in-process runner does not capture: run the built daop.dll.
    static async Task<(int Code, string Stdout)> Daop(params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "daop.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        Assert.True(p.ExitCode == 0, await stderr);
        return (p.ExitCode, await stdout);
    }

    [Fact]
    public async Task BrokenGgufFilesAreOneLineNamingTheFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"daop-bad-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, [.. "GGUF"u8, 1, 0, 0, 0, .. new byte[16]]);
        try
        {
            var r = await CliRunner.Run("run", "-m", path, "-p", "x");
            Assert.Equal(2, r.ExitCode);
            Assert.Equal("", r.Out);
            Assert.Equal($"daop: {path}: GGUF version 1 (32-bit counts) is not supported; convert the model again with a current llama.cpp", Assert.Single(r.ErrLines));
        }
        finally { File.Delete(path); }
    }
}
