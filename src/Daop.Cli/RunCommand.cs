using System.CommandLine;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;

namespace Daop.Cli;

/// <summary><c>daop run</c>: one prompt, streamed, then a one-line speed summary on stderr.</summary>
static class RunCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text.", Required = true };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy.", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Sample from the K most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 42UL };
        var chat = new Option<bool>("--chat") { Description = "Wrap the prompt as a user message with the model's chat template." };
        var context = CommonOptions.Context();
        var device = CommonOptions.Device();
        var ratio = CommonOptions.CacheRatio();
        var budget = CommonOptions.VramBudget();
        var policy = CommonOptions.Policy();
        var threads = CommonOptions.Threads();
        var cmd = new Command("run", "Generate a continuation of one prompt.")
        {
            model, prompt, maxTokens, temperature, topK, topP, seed, chat, context, threads, device, ratio, budget, policy,
        };
        cmd.SetAction((r, cancel) =>
        {
            var sampling = new SamplingOptions
            {
                MaxNewTokens = r.GetValue(maxTokens), Temperature = r.GetValue(temperature), TopK = r.GetValue(topK),
                TopP = r.GetValue(topP), Seed = r.GetValue(seed),
            };
            return Task.FromResult(Run(r.GetValue(model), r.GetValue(prompt)!, sampling, r.GetValue(chat), r.GetValue(context),
                r.GetValue(threads), () => DeviceChoice.Options(r.GetValue(device)!, r.GetValue(context), r.GetValue(ratio), r.GetValue(budget), r.GetValue(policy)!), cancel));
        });
        return cmd;
    }

    static int Run(string? modelDir, string prompt, SamplingOptions sampling, bool chat, int? context, int? threads, Func<ModelOptions> options, CancellationToken cancel)
    {
        try
        {
            if (threads is { } t) Daop.Kernels.Cpu.CpuWorkers.Configure(t);
            string dir = modelDir ?? ModelLocator.Default();
            using var model = MoeModel.Load(dir, options());
            var tok = HfTokenizer.FromDirectory(dir);
            string text = prompt;
            if (chat)
            {
                var template = ChatTemplate.FromDirectory(dir)
                    ?? throw new ModelLoadException($"{dir}: no chat template (chat_template.jinja or tokenizer_config.json chat_template)");
                text = template.Render([new ChatMessage("user", prompt)], addGenerationPrompt: true);
            }
            var ids = tok.Encode(text, addSpecialTokens: chat ? false : true);
            var stats = new GenerationStats();
            var streamer = tok.CreateStreamer();
            var stop = new HashSet<int>(model.Config.EosTokenIds);
            if (tok.EosTokenId is { } eos) stop.Add(eos);
            var stdout = Console.Out;
            if (!chat) stdout.Write(prompt);
            foreach (int id in new Generator(model).Generate(ids, sampling with { StopTokenIds = stop }, stats, cancel))
                stdout.Write(streamer.Append(id));
            stdout.Write(streamer.Flush());
            stdout.WriteLine();
            stdout.Flush();
            Console.Error.WriteLine(
                $"[daop] prompt {stats.PromptTokens} tok, {stats.PrefillTokensPerSecond:F1} tok/s | decode {stats.GeneratedTokens} tok, " +
                $"{stats.DecodeTokensPerSecond:F1} tok/s | {stats.Finish.ToString().ToLowerInvariant()} | {model.Device.Name}, {model.Experts.Description}");
            return 0;
        }
        catch (Exception e) when (e is ModelLoadException or ContextOverflowException or ArgumentException or FileNotFoundException or DeviceUnavailableException)
        {
            Console.Error.WriteLine($"daop: {e.Message}");
            return 2;
        }
    }
}
