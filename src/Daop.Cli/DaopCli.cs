using System.CommandLine;
using System.CommandLine.Parsing;

namespace Daop.Cli;

/// <summary>
/// The <c>daop</c> command line: the command tree with every option's rule (<see cref="OptionRules"/>), and the one way
/// it ends: a parse error, a bad value or a user error prints one "daop: ..." line and exits 2; an internal error one
/// line and exit 1 (see <see cref="CliErrors"/>).
/// </summary>
static class DaopCli
{
    /// <summary>Every command, with the option rules applied.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("Daop: Mixture-of-Experts inference with experts split between GPU and CPU.");
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
#if !DAOP_AOT
        var bench = BenchCommand.Create();
        bench.Subcommands.Add(LoadTestCommand.Create());
        root.Subcommands.Add(bench);
#endif
        OptionRules.Apply(root);
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; the process exit code.</summary>
    public static async Task<int> InvokeAsync(string[] args)
    {
        var result = Root().Parse(args);
        if (result.Errors.Count > 0)
        {
            Console.Error.WriteLine(ParseErrorLine(result));
            return 2;
        }
        try
        {
            // Exceptions come here instead of System.CommandLine's handler, which prints the stack trace and exits 1.
            // chat handles Ctrl+C itself (it stops a reply, not the program); every other command is cancelled by it.
            return await result.InvokeAsync(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = result.CommandResult.Command.Name == "chat" ? null : TimeSpan.FromSeconds(2),
            });
        }
        catch (Exception e)
        {
            return CliErrors.Report(e, Console.Error, CliErrors.Debug);
        }
    }

    /// <summary>"daop: &lt;the first error&gt; (see daop run --help)".</summary>
    public static string ParseErrorLine(ParseResult result)
    {
        var command = result.CommandResult.Command;
        string path = CommandPath(result.CommandResult);
        string commands = string.Join(", ", command.Subcommands.Select(c => c.Name));
        string message = command.Action != null || command.Subcommands.Count == 0 ? result.Errors[0].Message.TrimEnd('.')
            : result.UnmatchedTokens.Count > 0 ? $"'{result.UnmatchedTokens[0]}' is not a command of {path}: {commands}"
            : $"{path} needs a command: {commands}";
        return $"daop: {string.Join(' ', message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))} (see {path} --help)";
    }

    static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? s = result; s != null; s = s.Parent)
            if (s is CommandResult { Command: not RootCommand } c) names.Add(c.Command.Name);
        names.Add("daop");
        names.Reverse();
        return string.Join(' ', names);
    }
}
