using System.CommandLine;
using System.Globalization;
using Daop.Cli;

namespace Daop.Tests.Cli;

/// <summary>Every option's values are checked while parsing, in every command: sizes, ranges and enumerations.</summary>
public class OptionRulesTests
{
    static ParseResult Parse(params string[] args) => DaopCli.Root().Parse(args);

    static string OneError(params string[] args)
    {
        var r = Parse(args);
        return Assert.Single(r.Errors).Message;
    }

    [Theory]
    [InlineData("run", "-p", "x")]
    [InlineData("chat")]
    [InlineData("serve")]
    [InlineData("inspect")]
    public void VramBudgetTakesSizesInEveryCommand(params string[] command)
    {
        var r = Parse([.. command, "--vram-budget", "8GiB"]);
        Assert.Empty(r.Errors);
        Assert.Equal(8L << 30, r.GetValue<long?>("--vram-budget"));
        Assert.Equal(24_000_000_000L, Parse([.. command, "--vram-budget", "24G"]).GetValue<long?>("--vram-budget"));
    }

    [Fact]
    public void SizeOptionsShareTheParser()
    {
        Assert.Equal(2L << 20, Parse("serve", "--max-body-bytes", "2MiB").GetValue<long>("--max-body-bytes"));
        Assert.Equal(512L << 20, Parse("bench", "--bandwidth-bytes", "512MiB").GetValue<long>("--bandwidth-bytes"));
        string e = OneError("run", "-p", "x", "--vram-budget", "8XB");
        Assert.Contains("--vram-budget", e);
        Assert.Contains("'8XB'", e);
        Assert.Contains("GiB", e);
    }

    [Theory]
    [InlineData("--policy", "bogus", "static-cpu", "run", "-p", "x")]
    [InlineData("--policy", "bogus", "daop-drift", "chat")]
    [InlineData("--policy", "LRU", "lru-on-demand", "serve")]
    [InlineData("--device", "gpu", "ilgpu-cpu", "run", "-p", "x")]
    [InlineData("--device", "cuda:1", "cuda", "serve")]
    [InlineData("--device", "tpu", "cuda", "bench", "synthetic")]
    [InlineData("--device", "tpu", "cuda", "bench", "policies")]
    [InlineData("--project", "llama", "mixtral-8x7b", "bench", "simulate")]
    [InlineData("--policies", "daop,bogus", "lru-prefetch", "bench", "accuracy")]
    [InlineData("--policies", "bogus", "daop-exact", "bench", "synthetic")]
    [InlineData("--miss-dtype", "bf16", "q4_0", "run", "-p", "x")]
    [InlineData("--miss-dtype", "q2_k", "q8_0", "bench", "policies")]
    [InlineData("--miss-dtypes", "q4_0,f16", "q8_0", "bench", "accuracy")]
    [InlineData("--miss-dtypes", "x", "mxfp4", "bench", "simulate")]
    public void EnumeratedOptionsNameOptionValueAndAllowedValues(string option, string value, string allowed, params string[] command)
    {
        string e = OneError([.. command, option, value]);
        Assert.StartsWith(option, e);
        Assert.Contains($"'{value.Split(',')[^1]}'", e);
        Assert.Contains(allowed, e);
    }

    [Fact]
    public void PolicyAliasesAreAccepted()
    {
        Assert.Empty(Parse("run", "-p", "x", "--policy", "fiddler").Errors);
        Assert.Empty(Parse("bench", "accuracy", "--policies", "lru, daop-approx").Errors);
    }

    [Theory]
    [InlineData("--context", "0", "run", "-p", "x")]
    [InlineData("--context", "100000000", "run", "-p", "x")]
    [InlineData("--context", "-5", "chat")]
    [InlineData("--threads", "0", "run", "-p", "x")]
    [InlineData("--threads", "100000", "run", "-p", "x")]
    [InlineData("--threads", "100000", "bench")]
    [InlineData("--threads", "-1", "bench", "kernels")]
    [InlineData("--max-tokens", "-5", "run", "-p", "x")]
    [InlineData("--max-tokens", "0", "chat")]
    [InlineData("--max-tokens", "99999999999", "run", "-p", "x")]
    [InlineData("--max-tokens", "0", "bench", "serve")]
    [InlineData("--temperature", "-1", "run", "-p", "x")]
    [InlineData("--temperature", "NaN", "run", "-p", "x")]
    [InlineData("--temperature", "Infinity", "chat")]
    [InlineData("--top-p", "0", "run", "-p", "x")]
    [InlineData("--top-p", "1.5", "chat")]
    [InlineData("--top-k", "-1", "run", "-p", "x")]
    [InlineData("--seed", "-1", "run", "-p", "x")]
    [InlineData("--expert-cache-ratio", "1.5", "run", "-p", "x")]
    [InlineData("--expert-cache-ratio", "-0.1", "serve")]
    [InlineData("--port", "70000", "serve")]
    [InlineData("--port", "-1", "serve")]
    [InlineData("--max-queue", "0", "serve")]
    [InlineData("--max-body-bytes", "0", "serve")]
    [InlineData("--max-body-bytes", "-1", "serve")]
    [InlineData("--max-tokens-limit", "0", "serve")]
    [InlineData("--chunk-tokens", "0", "inspect")]
    [InlineData("--prompt-tokens", "0", "bench")]
    [InlineData("--prompt-tokens", "2000000000", "bench")]
    [InlineData("--repeats", "0", "bench")]
    [InlineData("--bandwidth-bytes", "1", "bench")]
    [InlineData("--batch", "100000", "bench", "kernels")]
    [InlineData("--ratios", "0.5,2", "bench", "simulate")]
    [InlineData("--ratios", "x", "bench", "accuracy")]
    [InlineData("--ratios", "0.25,abc", "bench", "policies")]
    [InlineData("--gpu-gbps", "0", "bench", "simulate")]
    [InlineData("--cpu-slowdown-while-copying", "0.5", "bench", "simulate")]
    [InlineData("--dense-layer-us", "0", "bench", "simulate")]
    [InlineData("--drift-window", "0", "bench", "simulate")]
    [InlineData("--traces", "0", "bench", "simulate")]
    [InlineData("--layers", "0", "bench", "synthetic")]
    [InlineData("--distinct-matrices", "-1", "bench", "policies")]
    [InlineData("--exact-layers", "0", "bench", "accuracy")]
    [InlineData("--length", "1", "bench", "accuracy")]
    [InlineData("--precalc-threads", "-1", "bench", "policies")]
    [InlineData("--prompts", "0", "bench", "policies")]
    [InlineData("--clients", "0", "bench", "serve")]
    [InlineData("--seconds", "0", "bench", "serve")]
    [InlineData("--miss-max-weight", "1.5", "run", "-p", "x")]
    [InlineData("--miss-max-weight", "-0.1", "serve")]
    [InlineData("--miss-max-weights", "0.1,2", "bench", "simulate")]
    [InlineData("--miss-max-weights", "nan", "bench", "accuracy")]
    public void NumericOptionsAreRangeChecked(string option, string value, params string[] command)
    {
        string e = OneError([.. command, option, value]);
        Assert.StartsWith($"{option} must be ", e);
        Assert.Contains($"'{value.Split(',')[^1]}'", e);
        Assert.DoesNotContain("System.", e); // no .NET type names ("Int32")
    }

    [Fact]
    public void ThreadsAreCappedAtFourTimesTheCores()
    {
        int max = Math.Min(1024, 4 * Environment.ProcessorCount);
        Assert.Empty(Parse("run", "-p", "x", "-t", max.ToString(CultureInfo.InvariantCulture)).Errors);
        Assert.Contains($"1..{max}", OneError("run", "-p", "x", "-t", (max + 1).ToString(CultureInfo.InvariantCulture)));
    }

    static IEnumerable<(Command Command, string[] Path)> Commands(Command c, string[] path)
    {
        yield return (c, path);
        foreach (var s in c.Subcommands)
            foreach (var x in Commands(s, [.. path, s.Name]))
                yield return x;
    }

    [Fact]
    public void EveryNumericOptionHasARule()
    {
        var missing = Commands(DaopCli.Root(), [])
            .SelectMany(c => c.Command.Options.Where(o => OptionRules.IsNumeric(o) && !OptionRules.Has(o.Name)).Select(o => $"{string.Join(' ', c.Path)} {o.Name}"))
            .ToList();
        Assert.Empty(missing);
    }

    [Fact]
    public void EveryDefaultPassesItsOwnRule()
    {
        int checkedDefaults = 0;
        foreach (var (cmd, path) in Commands(DaopCli.Root(), []))
        {
            string[] required = [.. cmd.Arguments.Where(a => a.Arity.MinimumNumberOfValues > 0).Select(_ => "x"),
                .. cmd.Options.Where(o => o.Required).SelectMany(o => new[] { o.Name, "x" })];
            foreach (var o in cmd.Options.Where(o => OptionRules.Has(o.Name) && o.HasDefaultValue))
            {
                string value = Convert.ToString(o.GetDefaultValue(), CultureInfo.InvariantCulture)!;
                var r = Parse([.. path, .. required, o.Name, value]);
                Assert.True(r.Errors.Count == 0, $"{string.Join(' ', path)} {o.Name} {value}: {string.Join("; ", r.Errors.Select(e => e.Message))}");
                checkedDefaults++;
            }
        }
        Assert.True(checkedDefaults > 30, $"{checkedDefaults} defaults");
    }
}
