// Daop as a library: load a model folder, look at it, stream a completion, chat, and share the model between tasks.
//
//   dotnet run --project samples/Daop.Sample -c Release -- [MODEL_DIR]      (default: models/tiny-mixtral-code)
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

string dir = args.Length > 0 ? args[0] : FindDefaultModel();
using var model = DaopModel.Load(dir, new DaopOptions { ContextLength = 1024 });

var info = model.Info;
Console.WriteLine($"{info.Name}: {info.Architecture}, {info.Layers} layers, {info.Experts} experts (top-{info.ExpertsPerToken}), " +
    $"{info.TotalParameters / 1e6:F1}M parameters, {info.ActiveParameters / 1e6:F1}M active per token");

// 1. Stream a completion, piece by piece, with statistics.
var settings = new GenerationSettings { MaxTokens = 48, Temperature = 0 };
var stats = new GenerationStats();
Console.Write("def fibonacci(n):");
await foreach (string piece in model.GenerateAsync("def fibonacci(n):", settings, stats))
    Console.Write(piece);
Console.WriteLine($"\n[{stats.GeneratedTokens} tokens, {stats.DecodeTokensPerSecond:F0} tok/s, {stats.Finish}]");

// 2. Chat: the model's chat template renders the conversation; stop sequences end the reply early.
if (info.HasChatTemplate)
{
    ChatMessage[] chat = [new("system", "You write short Python."), new("user", "Reverse a string")];
    Console.Write("chat> ");
    await foreach (string piece in model.ChatAsync(chat, settings with { Stop = ["\n\n"] }))
        Console.Write(piece);
    Console.WriteLine();
}

// 3. One model, several callers: generations take turns in arrival order, each gets only its own text.
string[] prompts = ["import os\n", "class Stack:", "for i in range(10):"];
var results = await Task.WhenAll(prompts.Select(async p =>
{
    var text = new System.Text.StringBuilder();
    await foreach (string piece in model.GenerateAsync(p, new GenerationSettings { MaxTokens = 12 })) text.Append(piece);
    return p + text;
}));
foreach (string r in results) Console.WriteLine($"--- {r.Replace("\n", "\\n")}");

// 4. Cancellation: the token stops a generation (queued or running) with OperationCanceledException.
using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(1));
try
{
    await foreach (string _ in model.GenerateAsync("def main():", new GenerationSettings { MaxTokens = 2000 }, cts.Token)) { }
}
catch (OperationCanceledException)
{
    Console.WriteLine("cancelled");
}

static string FindDefaultModel()
{
    for (var d = new DirectoryInfo(Environment.CurrentDirectory); d != null; d = d.Parent)
    {
        string candidate = Path.Combine(d.FullName, "models", "tiny-mixtral-code");
        if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
    }
    throw new DirectoryNotFoundException("models/tiny-mixtral-code not found: pass a model folder");
}
