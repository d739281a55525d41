using Daop.Cli;

return await DaopCli.InvokeAsync(args);
