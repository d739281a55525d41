using System.CommandLine;
using Daop.Cli;

var root = new RootCommand("Daop: Mixture-of-Experts inference with experts split between GPU and CPU.");
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
#if !DAOP_AOT
var bench = BenchCommand.Create();
bench.Subcommands.Add(LoadTestCommand.Create());
root.Subcommands.Add(bench);
#endif
return await root.Parse(args).InvokeAsync();
