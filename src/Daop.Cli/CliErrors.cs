using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;

namespace Daop.Cli;

/// <summary>
/// How daop ends on an error: one "daop: ..." line on stderr and no stack trace (unless <c>DAOP_DEBUG</c> is set).
/// Errors a user can fix (options, files, models, devices) exit 2; anything else is an internal error and exits 1;
/// cancellation (Ctrl+C) exits 130.
/// </summary>
static class CliErrors
{
    // Library parameter names that an ArgumentException may carry, and the options they come from.
    static readonly Dictionary<string, string> OptionOf = new(StringComparer.Ordinal)
    {
        ["ContextLength"] = "--context", ["ratio"] = "--expert-cache-ratio", ["vramBytes"] = "--vram-budget",
        ["budgetBytes"] = "--vram-budget", ["threads"] = "--threads", ["maxChunkTokens"] = "--chunk-tokens",
    };

    /// <summary>Whether <c>DAOP_DEBUG</c> asks for stack traces.</summary>
    public static bool Debug => Environment.GetEnvironmentVariable("DAOP_DEBUG") is { Length: > 0 } v && v != "0";

    public static bool IsUserError(Exception e) => e is ModelLoadException or ContextOverflowException or ArgumentException
        or FileNotFoundException or DeviceUnavailableException or DeviceNotAvailableException or ChatTemplateException
        or NotSupportedException or IOException or UnauthorizedAccessException or Daop.Engine.Model.NonFiniteException;

    /// <summary>Runs a command's body; an exception ends it as <see cref="Report"/> says.</summary>
    public static async Task<int> Run(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e)
        {
            return Report(e, Console.Error, Debug);
        }
    }

    /// <summary>Writes the one line for <paramref name="e"/> (plus the whole exception when <paramref name="debug"/>) and returns the exit code.</summary>
    public static int Report(Exception e, TextWriter error, bool debug)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException && e.InnerException != null)
            e = e.InnerException!;
        if (e is OperationCanceledException)
        {
            if (debug) error.WriteLine(e);
            return 130;
        }
        bool user = IsUserError(e);
        error.WriteLine(user ? $"daop: {Message(e)}"
            : $"daop: internal error: {e.GetType().Name}: {Message(e)}{(debug ? "" : " (DAOP_DEBUG=1 prints the stack trace)")}");
        if (debug) error.WriteLine(e);
        return user ? 2 : 1;
    }

    /// <summary>
    /// The exception's message on one line, without .NET's "(Parameter 'x')" suffix; an argument that comes from an
    /// option is named by the option.
    /// </summary>
    public static string Message(Exception e)
    {
        string m = Text(e);
        return e is ArgumentException { ParamName: { } p } && OptionOf.TryGetValue(p, out var option) && !m.Contains(option, StringComparison.Ordinal)
            ? $"{option}: {m}" : m;
    }

    /// <summary>The exception's message on one line, without .NET's "(Parameter 'x')" suffix.</summary>
    public static string Text(Exception e)
    {
        string m = e is ArgumentException { ParamName: { } p } ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;
        return string.Join(' ', m.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
