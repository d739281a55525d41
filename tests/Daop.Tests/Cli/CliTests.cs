using Daop.Cli;
using Daop.Engine.Load;

namespace Daop.Tests.Cli;

/// <summary>
/// The command line as a new user meets it, run in-process: every parse or validation error is one "daop: ..." line and
/// exit code 2; nothing is printed before a refusal; no stack traces.
/// </summary>
[Collection(ConsoleCollection.Name)]
public class CliTests
{
    static void AssertOneErrorLine(CliRunner.Result r, params string[] contains)
    {
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Out);
        string line = Assert.Single(r.ErrLines);
        Assert.StartsWith("daop: ", line);
        foreach (string c in contains) Assert.Contains(c, line);
        Assert.DoesNotContain("   at ", r.Err);
    }

    [Theory]
    [InlineData("'--foo'", "run", "-p", "x", "--foo")]
    [InlineData("'rn' is not a command of daop", "rn")]
    [InlineData("daop needs a command: run, chat, serve, inspect, quantize, bench")]
    [InlineData("'bogus'", "bench", "bogus")]
    [InlineData("--vram-budget", "run", "-p", "x", "--vram-budget", "lots")]
    public async Task ParseErrorsAreOneLineAndExitTwo(string message, params string[] args)
    {
        var r = await CliRunner.Run(args);
        AssertOneErrorLine(r, message, "--help");
        Assert.DoesNotContain("Usage:", r.Err);
    }

    [Fact]
    public async Task RunWithoutAPromptSaysWhereOneComesFrom()
    {
        // The test host's stdin is redirected and empty: the prompt sources are named, nothing is generated.
        AssertOneErrorLine(await CliRunner.Run("run"), "no prompt: give --prompt TEXT, --file PATH, or pipe it on stdin");
    }

    [Fact]
    public async Task VramBudgetSizeReachesTheDeviceCheck()
    {
        // Before: "Cannot parse argument '8GiB'" and the whole help. Now the size parses, and the CPU device refuses it.
        var r = await CliRunner.Run("run", "-p", "x", "--vram-budget", "8GiB");
        AssertOneErrorLine(r, "--vram-budget", "--device cuda");
    }

    [Fact]
    public async Task UnknownPolicyIsRefused()
    {
        var r = await CliRunner.Run("run", "-p", "x", "-n", "1", "--policy", "bogus");
        AssertOneErrorLine(r, "--policy", "'bogus'", "lru-on-demand", "daop-drift");
    }

    [Fact]
    public async Task PolicyWithoutOffloadingIsRefused()
    {
        var r = await CliRunner.Run("run", "-p", "x", "-n", "1", "--policy", "daop");
        AssertOneErrorLine(r, "--policy daop", "--expert-cache-ratio");
    }

    [Fact]
    public async Task PrecalcMaxDriftIsForCheckedPoliciesAndOneValue()
    {
        string[] offload = ["run", "-p", "x", "-n", "1", "--device", "ilgpu-cpu", "--expert-cache-ratio", "0.5"];
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--policy", "daop", "--precalc-max-drift", "0.3"]), "--precalc-max-drift", "daop-checked", "--policy is daop");
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--policy", "daop-checked", "--precalc-max-drift", "0.3,0.4"]), "--precalc-max-drift", "one value");
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--policy", "daop-checked", "--precalc-max-drift", "-1"]), "--precalc-max-drift");
    }

    [Fact]
    public async Task MissPrecisionNeedsOffloadingBothOptionsAndUnquantizedExperts()
    {
        string[] offload = ["run", "-p", "x", "-n", "1", "--device", "ilgpu-cpu", "--expert-cache-ratio", "0.5"];
        AssertOneErrorLine(await CliRunner.Run("run", "-p", "x", "-n", "1", "--miss-dtype", "q4_0", "--miss-max-weight", "0.2"), "--miss-dtype", "--expert-cache-ratio");
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--miss-dtype", "q4_0"]), "--miss-dtype needs --miss-max-weight");
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--miss-max-weight", "0.2"]), "--miss-max-weight needs --miss-dtype");
        AssertOneErrorLine(await CliRunner.Run([.. offload, "--expert-dtype", "q8_0", "--miss-dtype", "q4_0", "--miss-max-weight", "0.2"]), "--miss-dtype q4_0", "stored as q8_0");
        AssertOneErrorLine(await CliRunner.Run("bench", "simulate", "--miss-max-weights", "0.2"), "--miss-max-weights needs --miss-dtypes");
        var ok = await CliRunner.Run([.. offload, "--miss-dtype", "q8_0", "--miss-max-weight", "1"]);
        Assert.Equal(0, ok.ExitCode);
        Assert.Contains("q8_0 copies of", ok.Err); // what the copy costs, at load
    }

    [Fact]
    public async Task ADriftBoundOfZeroRunsTheExactModel()
    {
        // Every pre-calculated output is refused at drift 0, so daop-checked decodes what daop-exact does.
        string[] run = ["run", "-p", "def fibonacci(n):", "-n", "12", "--device", "ilgpu-cpu", "--expert-cache-ratio", "0.25"];
        var exact = await CliRunner.Run([.. run, "--policy", "daop-exact"]);
        var bounded = await CliRunner.Run([.. run, "--policy", "daop-checked", "--precalc-max-drift", "0"]);
        Assert.Equal(0, exact.ExitCode);
        Assert.Equal(0, bounded.ExitCode);
        Assert.Equal(exact.Out, bounded.Out);
        Assert.NotEmpty(exact.Out.Trim());
        // Unbounded, the stale pre-calculations change this prompt's greedy text: the bound is what made them equal.
        Assert.NotEqual(exact.Out, (await CliRunner.Run([.. run, "--policy", "daop-checked"])).Out);
    }

    [Fact]
    public async Task ExpertCacheRatioMessageNamesTheOptionAndRange()
    {
        var r = await CliRunner.Run("run", "-p", "x", "--device", "ilgpu-cpu", "--expert-cache-ratio", "1.5");
        AssertOneErrorLine(r, "--expert-cache-ratio", "[0, 1]", "'1.5'");
        Assert.DoesNotContain("Parameter", r.Err);
    }

    [Theory]
    [InlineData("--threads", "run", "-p", "x", "-t", "100000")]
    [InlineData("--context", "run", "-p", "x", "--context", "100000000")]
    [InlineData("--max-tokens", "run", "-p", "x", "-n", "-5")]
    [InlineData("--port", "serve", "--port", "99999")]
    public async Task OutOfRangeNumbersAreRefusedUpFront(string option, params string[] args) =>
        AssertOneErrorLine(await CliRunner.Run(args), option);

    [Fact]
    public async Task BenchOutputFilesAreCheckedBeforeTheRun()
    {
        string missing = Path.Combine(Path.GetTempPath(), "daop-no-such-folder", "r.json");
        AssertOneErrorLine(await CliRunner.Run("bench", "routing", "--json", missing), "--json", "does not exist");
        AssertOneErrorLine(await CliRunner.Run("bench", "accuracy", "--json", Path.GetTempPath()), "--json", "is a folder");
    }

    [Fact]
    public async Task BenchContextTooLargeNamesTheBenchOptions()
    {
        // bench has no --context: its context is --prompt-tokens + --new-tokens, and the refusal names those.
        var r = await CliRunner.Run("bench", "--prompt-tokens", "16000000", "--new-tokens", "16000000", "--bandwidth-bytes", "1MiB");
        Assert.Equal(2, r.ExitCode);
        string line = Assert.Single(r.ErrLines);
        Assert.StartsWith("daop: --prompt-tokens 16000000 + --new-tokens 16000000: ", line);
        Assert.DoesNotContain("--context", line);
    }

    [Fact]
    public async Task TooLongPromptIsRefusedBeforeItIsEchoed()
    {
        string prompt = string.Concat(Enumerable.Repeat("def f(x): return x\n", 40));
        var r = await CliRunner.Run("run", "-p", prompt, "--context", "32", "-n", "4");
        AssertOneErrorLine(r, "context");
    }

    [Fact]
    public async Task ModelFolderContentsAreReportedInReadingOrder()
    {
        string dir = Directory.CreateTempSubdirectory("daop-cli-").FullName;
        try
        {
            AssertOneErrorLine(await CliRunner.Run("run", "-p", "x", "-m", Path.Combine(dir, "nope")), "model folder not found");
            AssertOneErrorLine(await CliRunner.Run("run", "-p", "x", "-m", dir), "config.json");
            File.Copy(Path.Combine(TestPaths.DefaultModel, "config.json"), Path.Combine(dir, "config.json"));
            AssertOneErrorLine(await CliRunner.Run("run", "-p", "x", "-m", dir), "safetensors");
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), []);
            AssertOneErrorLine(await CliRunner.Run("run", "-p", "x", "-m", dir), "tokenizer.json");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task RunStillStreamsThePromptAndContinuation()
    {
        var r = await CliRunner.Run("run", "-p", "def add(a, b):", "-n", "4");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("def add(a, b):", r.Out);
        Assert.Contains("[daop] prompt", r.Err);
    }

    static Exception Thrown(Exception e)
    {
        try
        {
            throw e;
        }
        catch (Exception caught)
        {
            return caught;
        }
    }

    [Fact]
    public void InternalErrorsAreOneLineWithoutStackTraceUnlessDebugging()
    {
        var e = Thrown(new InvalidOperationException("slot 3 holds expert 5"));
        var w = new StringWriter();
        Assert.Equal(1, CliErrors.Report(e, w, debug: false));
        string line = Assert.Single(w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("daop: internal error: InvalidOperationException: slot 3 holds expert 5", line);
        Assert.Contains("DAOP_DEBUG", line);

        w = new StringWriter();
        Assert.Equal(1, CliErrors.Report(e, w, debug: true));
        Assert.Contains("   at ", w.ToString());

        w = new StringWriter();
        Assert.Equal(2, CliErrors.Report(Thrown(new ModelLoadException("x/config.json: field 'hidden_size' must be positive")), w, debug: false));
        Assert.Equal("daop: x/config.json: field 'hidden_size' must be positive", w.ToString().Trim());
        Assert.Equal(130, CliErrors.Report(new OperationCanceledException(), new StringWriter(), debug: false));
    }

    [Fact]
    public void ArgumentMessagesLoseTheParameterSuffixAndNameTheOption()
    {
        Assert.Equal("--expert-cache-ratio: expert cache ratio must be in [0, 1], got 1.5",
            CliErrors.Message(new ArgumentOutOfRangeException("ratio", "expert cache ratio must be in [0, 1], got 1.5")));
        Assert.Equal("--context: too long", CliErrors.Message(new ArgumentOutOfRangeException("ContextLength", "too long")));
        Assert.Equal("bad thing", CliErrors.Message(new ArgumentException("bad thing", "internalName")));
        Assert.Equal("two lines", CliErrors.Message(new IOException("two\nlines")));
    }

    [Fact]
    public async Task InspectCheckNamesANonFiniteWeight()
    {
        var ok = await CliRunner.Run("inspect", "--check");
        Assert.Equal(0, ok.ExitCode);
        Assert.Contains("tensors finite", ok.Err);
        using var dir = Daop.Tests.Model.NonFiniteModelTests.PoisonedModel(fixture: TestPaths.DefaultModel);
        var bad = await CliRunner.Run("inspect", dir.Path, "--check");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("daop: non-finite weight in model.layers.1.self_attn.o_proj.weight: element 5", bad.Err);
        Assert.Contains("layer 1's attention", bad.Err);
    }
}
