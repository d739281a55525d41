using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

using var model = DaopModel.Load("models/tiny-mixtral-code", new DaopOptions { ContextLength = 2048, Device = "cpu" });
Console.WriteLine($"{model.Info.Architecture}: {model.Info.TotalParameters:N0} parameters, {model.Info.ActiveParameters:N0} active");

using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(1));   // or Ctrl+C, a request's token, ...
var settings = new GenerationSettings { MaxTokens = 64, Temperature = 0.7f, TopP = 0.9f, Seed = 1, Stop = ["\n\n"] };
var stats = new GenerationStats();
await foreach (string piece in model.GenerateAsync("def fibonacci(n):", settings, stats, cancel.Token))
    Console.Write(piece);
Console.WriteLine($"\n[{stats.GeneratedTokens} tokens, {stats.DecodeTokensPerSecond:F0} tok/s, {stats.Finish}]");

await foreach (string piece in model.ChatAsync([new ChatMessage("user", "Reverse a string")], settings))
    Console.Write(piece);
