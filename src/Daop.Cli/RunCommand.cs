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
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text (or --file; or piped on stdin)." };
        var file = new Option<string?>("--file", "-f") { Description = "Read the prompt from this file ('-': stdin)." };
        var chat = new Option<bool>("--chat") { Description = "Wrap the prompt as a user message with the model's chat template." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (text, token counts, speed, finish reason) instead of streaming." };
        var cmd = new Command("run", "Generate a continuation of one prompt.") { prompt, file };
        s.AddTo(cmd);
        cmd.Options.Add(chat);
        cmd.Options.Add(json);
        m.AddTo(cmd);
        cmd.SetAction((r, cancel) => CliErrors.Run(() =>
            Run(r, m, s.Settings(r), Prompt(r.GetValue(prompt), r.GetValue(file)), r.GetValue(chat), r.GetValue(json), cancel)));
        return cmd;
    }

    /// <summary>Largest prompt read from a file or stdin (the context bounds what is used; this bounds what is read).</summary>
    public const int MaxPromptBytes = 64 << 20;

    // --prompt, else --file (a path, or '-' for stdin), else stdin when it is piped; exactly one source.
    static string Prompt(string? text, string? file)
    {
        if (text != null && file != null) throw new ArgumentException("give --prompt or --file, not both");
        if (text != null) return text;
        if (file == null && !Console.IsInputRedirected)
            throw new ArgumentException("no prompt: give --prompt TEXT, --file PATH, or pipe it on stdin");
        if (file != null && file != "-")
        {
            if (!File.Exists(file)) throw new ArgumentException($"--file {file}: file not found");
            if (new FileInfo(file).Length > MaxPromptBytes) throw new ArgumentException($"--file {file}: larger than {MaxPromptBytes >> 20} MiB");
            return File.ReadAllText(file);
        }
        var buffer = new char[MaxPromptBytes / 4];
        int n = 0, read;
        var stdin = Console.In;
        while (n < buffer.Length && (read = stdin.Read(buffer, n, buffer.Length - n)) > 0) n += read;
        if (n == buffer.Length && stdin.Peek() >= 0) throw new ArgumentException($"the prompt on stdin is longer than {buffer.Length} characters");
        if (n == 0 && file == null) throw new ArgumentException("no prompt: give --prompt TEXT, --file PATH, or pipe it on stdin (stdin was empty)");
        return new string(buffer, 0, n);
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
