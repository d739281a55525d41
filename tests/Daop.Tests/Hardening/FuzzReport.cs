using System.Diagnostics;

namespace Daop.Tests.Hardening;

static class FuzzReport
{
    /// <summary>Mutants every fuzz test runs whatever the clock says, so a busy machine shortens nothing below this.</summary>
    public const int MinMutants = 200;

    /// <summary>
    /// How long one mutant may run before it counts as a hang: a mutant of these tiny fixtures takes milliseconds, but on
    /// the 2-core CI machine, with the GPU-path tests' accelerator threads running beside it, one was stalled for over
    /// 10 s (CI, 2026-12-08: gptoss-tiny without beta_fast, 2 ms alone); an infinite loop or a deadlock still never ends.
    /// </summary>
    public static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(60);

    /// <summary>An integer from the environment, or <paramref name="fallback"/>.</summary>
    public static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : fallback;

    /// <summary>
    /// Whether mutant <paramref name="i"/> runs: always below <see cref="MinMutants"/>, then while the time budget lasts,
    /// up to <paramref name="max"/>. The count is a floor, not a timed assertion: on a loaded CI machine the test takes
    /// longer instead of failing.
    /// </summary>
    public static bool KeepGoing(int i, int max, Stopwatch sw, TimeSpan budget) =>
        i < max && (i < MinMutants || sw.Elapsed < budget);

    /// <summary>
    /// Runs one mutant on its own thread and waits up to <paramref name="timeout"/> for it: <c>finished</c> is false when
    /// it is still running (a hang), else <c>error</c> is what it threw. A dedicated thread, not the thread pool: other
    /// tests that run in parallel can starve the pool for seconds, which made mutants look slow (CI, 2026-12-06: 16
    /// mutants in 12 s against ~1700 alone).
    /// </summary>
    public static (bool Finished, Exception? Error) RunIsolated(Action mutant, TimeSpan timeout)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { mutant(); }
            catch (Exception e) { error = e; }
        }) { IsBackground = true, Name = "fuzz mutant" };
        thread.Start();
        return thread.Join(timeout) ? (true, error) : (false, null);
    }

    /// <summary>Where an exception came from: its type and the first frame in our code, so each bug is reported once.</summary>
    public static string Site(Exception e)
    {
        string frame = e.StackTrace?.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("at Daop.", StringComparison.Ordinal)) ?? "?";
        int paren = frame.IndexOf('(');
        return e.GetType().Name + " " + (paren > 0 ? frame[..paren] : frame);
    }
}
