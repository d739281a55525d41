using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Daop.Tests.Cli;

/// <summary><c>daop serve</c> as a user runs it (the built daop.dll in a process): what it prints and its exit code when it cannot start.</summary>
public sealed class ServeCommandTests
{
    /// <summary>Runs daop with <paramref name="args"/>; returns its exit code and stderr. Kills it after 60 s.</summary>
    static async Task<(int Code, string Stderr)> Daop(IReadOnlyDictionary<string, string?>? env, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "daop.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        start.Environment["DAOP_API_KEY"] = null;
        foreach (var (name, value) in env ?? new Dictionary<string, string?>()) start.Environment[name] = value;
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            Assert.Fail($"daop {string.Join(' ', args)} still runs after 60 s: {await stderr}");
        }
        await stdout;
        return (p.ExitCode, await stderr);
    }

    static void AssertOneErrorLine(string stderr, string expected)
    {
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("daop: WARNING", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, stderr);
        Assert.StartsWith("daop: ", errors[0]);
        Assert.Contains(expected, errors[0]);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public async Task ABindFailureIsOneLineNamingTheAddressAndExitCode2()
    {
        // An address this machine does not have (TEST-NET-1), and not loopback: the warning comes first.
        var (code, stderr) = await Daop(null, "serve", "--host", "192.0.2.1", "--port", "0", "-m", TestPaths.DefaultModel);
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, "192.0.2.1:0");
        Assert.Contains("daop: WARNING: listening on 192.0.2.1", stderr);

        // A port in use.
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        string port = ((IPEndPoint)taken.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        (code, stderr) = await Daop(null, "serve", "--port", port, "-m", TestPaths.DefaultModel);
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, $"127.0.0.1:{port}");
        Assert.DoesNotContain("WARNING", stderr);
    }

    [Fact]
    public async Task AnApiKeyFromTheEnvironmentSilencesTheWarning()
    {
        var (code, stderr) = await Daop(new Dictionary<string, string?> { ["DAOP_API_KEY"] = "sk-test" },
            "serve", "--host", "192.0.2.1", "--port", "0", "-m", TestPaths.DefaultModel);
        Assert.Equal(2, code);
        Assert.DoesNotContain("WARNING", stderr);
    }

    [Theory]
    [InlineData("--cors-origins", "localhost:3000", "CORS origins")]
    [InlineData("--api-key", "", "API key")]
    [InlineData("--allowed-hosts", "http://example.com/", "allowed hosts")]
    [InlineData("--host", "example.com", "--host")]
    public async Task BadServeOptionsAreOneLineAndExitCode2(string option, string value, string expected)
    {
        // A folder that is no model: the options fail first, before any loading.
        var (code, stderr) = await Daop(null, "serve", "--port", "0", option, value, "-m", Path.GetTempPath());
        Assert.Equal(2, code);
        AssertOneErrorLine(stderr, expected);
    }
}
