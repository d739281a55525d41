using System.Diagnostics;
using System.Text.Json;

namespace Daop.Tests.Cli;

/// <summary>
/// <c>daop run</c> takes its prompt as llama.cpp users type it: <c>--prompt</c>, <c>--file</c>/<c>-f</c> (or '-'), or piped
/// on stdin; llama.cpp's <c>--temp</c>, <c>-c</c>/<c>--ctx-size</c> and <c>--stop</c> work. Runs the built daop.dll in a
/// process, so stdin can be piped.
/// </summary>
public class PromptSourceTests
{
    static async Task<(int Code, string Out, string Err)> Daop(string? stdin, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "daop.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        if (stdin != null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    static JsonElement Json(string stdout) => JsonDocument.Parse(stdout).RootElement;

    [Fact]
    public async Task ThePromptComesFromAFileOrStdin()
    {
        string path = Path.Combine(Path.GetTempPath(), $"daop-prompt-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, "def add(a, b):\n");
        try
        {
            var (code, stdout, stderr) = await Daop(null, "run", "-f", path, "-n", "4", "--temp", "0", "-c", "128", "--json");
            Assert.True(code == 0, stderr);
            Assert.Equal("def add(a, b):\n", Json(stdout).GetProperty("prompt").GetString());
            Assert.Equal(4, Json(stdout).GetProperty("generated_tokens").GetInt32());
            var piped = await Daop("class Stack:", "run", "-n", "4", "--ctx-size", "128", "--json");
            Assert.True(piped.Code == 0, piped.Err);
            Assert.Equal("class Stack:", Json(piped.Out).GetProperty("prompt").GetString());
            var dash = await Daop("for i in", "run", "-f", "-", "-n", "2", "--json");
            Assert.Equal("for i in", Json(dash.Out).GetProperty("prompt").GetString());
            var both = await Daop(null, "run", "-p", "x", "-f", path);
            Assert.Equal(2, both.Code);
            Assert.Contains("give --prompt or --file, not both", both.Err);
            var missing = await Daop(null, "run", "-f", path + ".missing");
            Assert.Equal(2, missing.Code);
            Assert.Contains("file not found", missing.Err);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public async Task StopEndsTheTextBeforeTheStopSequence()
    {
        var full = await Daop(null, "run", "-p", "def fibonacci(n):", "-n", "32", "--json");
        Assert.True(full.Code == 0, full.Err);
        string text = Json(full.Out).GetProperty("text").GetString()!;
        Assert.True(text.Length >= 8, text);
        string stop = text.Substring(text.Length / 2, 3);
        var cut = await Daop(null, "run", "-p", "def fibonacci(n):", "-n", "32", "--stop", stop, "--json");
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], Json(cut.Out).GetProperty("text").GetString());
        Assert.Equal("stop", Json(cut.Out).GetProperty("finish_reason").GetString());
    }
}
