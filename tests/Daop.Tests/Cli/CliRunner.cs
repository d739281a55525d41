using Daop.Cli;

namespace Daop.Tests.Cli;

/// <summary>Tests that run daop in-process with the console captured: serial, since the console is process-wide.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "console";
}

/// <summary>Runs <c>daop ARGS</c> in-process (<see cref="DaopCli.InvokeAsync"/>) and captures stdout and stderr.</summary>
static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Err)
    {
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static async Task<Result> Run(params string[] args)
    {
        var (stdin, stdout, stderr) = (Console.In, Console.Out, Console.Error);
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetIn(new StringReader("")); // never the test host's own stdin, which may be a pipe that stays open
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = await DaopCli.InvokeAsync(args);
            return new Result(code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetIn(stdin);
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }
}
