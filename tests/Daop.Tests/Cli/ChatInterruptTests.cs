using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Daop.Tests.Cli;

/// <summary>
/// Ctrl+C (SIGINT) during a <c>daop chat</c> reply stops that reply, keeps what was said in the conversation (the next
/// turn's prompt is longer by it) and the chat goes on; the process then ends normally at the end of input.
/// </summary>
public partial class ChatInterruptTests
{
    [GeneratedRegex(@"\[daop\] prompt (\d+) tok, [\d.]+ tok/s \| reply (\d+) tok, [\d.]+ tok/s \| (\w+)")]
    private static partial Regex StatsLine();

    [Fact]
    public async Task InterruptStopsTheReplyNotTheChat()
    {
        if (!OperatingSystem.IsLinux()) return;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false,
            WorkingDirectory = TestPaths.Root,
        };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "daop.dll"), "chat", "-n", "4000", "--temp", "1", "--stats" })
            start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var err = new System.Text.StringBuilder();
        var output = new System.Text.StringBuilder();
        var replying = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        p.ErrorDataReceived += (_, e) => { lock (err) err.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        var stdout = Task.Run(async () =>
        {
            var buffer = new char[256];
            int n;
            while ((n = await p.StandardOutput.ReadAsync(buffer)) > 0)
                lock (output)
                {
                    output.Append(buffer, 0, n);
                    if (output.Length > 40) replying.TrySetResult(); // a reply of up to 4000 tokens is under way
                }
            return output.ToString();
        });
        await p.StandardInput.WriteLineAsync("Write a very long program");
        await p.StandardInput.FlushAsync();
        await replying.Task.WaitAsync(TimeSpan.FromSeconds(60));
        using (var kill = Process.Start("kill", $"-INT {p.Id}")!) await kill.WaitForExitAsync();
        await Task.Delay(500);
        await p.StandardInput.WriteLineAsync("hi");
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(cts.Token);
        string log;
        lock (err) log = err.ToString();
        Assert.True(p.ExitCode == 0, log);
        var turns = StatsLine().Matches(log).ToList();
        Assert.True(turns.Count == 2, log);
        Assert.Equal("stopped", turns[0].Groups[3].Value);
        int firstPrompt = int.Parse(turns[0].Groups[1].Value), firstReply = int.Parse(turns[0].Groups[2].Value);
        Assert.InRange(firstReply, 1, 3999);
        Assert.True(int.Parse(turns[1].Groups[1].Value) > firstPrompt + firstReply / 2, log); // the partial reply is in the second prompt
        Assert.Contains(" [stopped]", await stdout);
    }
}
