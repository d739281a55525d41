using System.CommandLine;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Cli;

/// <summary><c>daop run</c>: one prompt, streamed, then a one-line speed summary on stderr (or one JSON object with --json).</summary>
static class RunCommand
{
    public static Command Create()
    {
        var m = new ModelArgs();
        var s = new SamplingArgs(defaultMaxTokens: 128);
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text.", Required = true };
        var chat = new Option<bool>("--chat") { Description = "Wrap the prompt as a user message with the model's chat template." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (text, token counts, speed, finish reason) instead of streaming." };
        var cmd = new Command("run", "Generate a continuation of one prompt.") { prompt };
        s.AddTo(cmd);
        cmd.Options.Add(chat);
        cmd.Options.Add(json);
        m.AddTo(cmd);
        cmd.SetAction((r, cancel) => CliErrors.Run(() => Run(r, m, s.Settings(r), r.GetValue(prompt)!, r.GetValue(chat), r.GetValue(json), cancel)));
        return cmd;
    }

    static async Task<int> Run(ParseResult r, ModelArgs m, GenerationSettings settings, string prompt, bool chat, bool json, CancellationToken cancel)
    {
        using var model = m.Load(r, quiet: json);
        // Encoded and checked before anything is printed: a prompt too long for the context is refused, not echoed first.
        int[] tokens = chat ? model.ChatTokens([new ChatMessage("user", prompt)]) : model.Tokenize(prompt, settings.AddSpecialTokens);
        model.CheckPromptLength(tokens.Length);
        var stats = new GenerationStats();
        var pieces = chat
            ? model.GenerateAsync(tokens, model.ChatStopTokenIds.ToArray(), settings, stats, cancel)
            : model.GenerateAsync(tokens, settings, stats, cancel);
        if (json)
        {
            var text = new System.Text.StringBuilder();
            await foreach (string piece in pieces) text.Append(piece);
            JsonOut.Write(w =>
            {
                w.WriteString("model", model.Info.Path);
                w.WriteString("prompt", prompt);
                w.WriteBoolean("chat", chat);
                w.WriteString("text", text.ToString());
                w.WriteNumber("prompt_tokens", stats.PromptTokens);
                w.WriteNumber("generated_tokens", stats.GeneratedTokens);
                w.WriteString("finish_reason", stats.Finish.ToString().ToLowerInvariant());
                w.WriteNumber("prefill_tokens_per_second", Math.Round(stats.PrefillTokensPerSecond, 1));
                w.WriteNumber("decode_tokens_per_second", Math.Round(stats.DecodeTokensPerSecond, 1));
                w.WriteString("device", model.Info.Device);
                w.WriteString("experts", model.Info.ExpertPlacement);
            });
            return 0;
        }
        var stdout = Console.Out;
        if (!chat) stdout.Write(prompt);
        await foreach (string piece in pieces) stdout.Write(piece);
        stdout.WriteLine();
        stdout.Flush();
        Console.Error.WriteLine(
            $"[daop] prompt {stats.PromptTokens} tok, {stats.PrefillTokensPerSecond:F1} tok/s | decode {stats.GeneratedTokens} tok, " +
            $"{stats.DecodeTokensPerSecond:F1} tok/s | {stats.Finish.ToString().ToLowerInvariant()} | {model.Info.Device}, {model.Info.ExpertPlacement}");
        return 0;
    }
}
