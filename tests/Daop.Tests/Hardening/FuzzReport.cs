namespace Daop.Tests.Hardening;

static class FuzzReport
{
    /// <summary>An integer from the environment, or <paramref name="fallback"/>.</summary>
    public static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : fallback;

    /// <summary>Where an exception came from: its type and the first frame in our code, so each bug is reported once.</summary>
    public static string Site(Exception e)
    {
        string frame = e.StackTrace?.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("at Daop.", StringComparison.Ordinal)) ?? "?";
        int paren = frame.IndexOf('(');
        return e.GetType().Name + " " + (paren > 0 ? frame[..paren] : frame);
    }
}
