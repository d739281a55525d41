using System.CommandLine;
using Daop.Cli;

var root = new RootCommand("Daop: Mixture-of-Experts inference with experts split between GPU and CPU.");
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return await root.Parse(args).InvokeAsync();
