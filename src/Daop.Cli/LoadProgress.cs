using System.Diagnostics;

namespace Daop.Cli;

/// <summary>
/// A one-line spinner on stderr while something slow runs (loading a model). Only on a terminal: when stdout or stderr
/// is redirected (a pipe, a file, CI) it prints nothing, so captured output stays clean.
/// </summary>
static class LoadProgress
{
    static readonly string[] Frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

    /// <summary>Whether progress lines would be shown.</summary>
    public static bool Enabled => !Console.IsOutputRedirected && !Console.IsErrorRedirected;

    public static T Run<T>(string what, bool quiet, Func<T> work)
    {
        if (quiet || !Enabled) return work();
        var sw = Stopwatch.StartNew();
        using var done = new ManualResetEventSlim();
        var spinner = new Thread(() =>
        {
            // Nothing for quick loads: the line appears only after a short delay.
            if (done.Wait(150)) return;
            for (int i = 0; !done.IsSet; i++)
            {
                Console.Error.Write($"\r{Frames[i % Frames.Length]} {what} {sw.Elapsed.TotalSeconds:F1} s");
                done.Wait(100);
            }
            Console.Error.Write("\r\u001b[K");
        }) { IsBackground = true, Name = "daop progress" };
        spinner.Start();
        try
        {
            return work();
        }
        finally
        {
            done.Set();
            spinner.Join();
        }
    }
}
