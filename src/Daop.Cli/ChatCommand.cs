using System.CommandLine;
using System.Text;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Cli;

/// <summary>
/// <c>daop chat</c>: a conversation on stdin/stdout with the model's chat template. Each input line is a user turn;
/// <c>/reset</c> clears the history, <c>/exit</c> (or end of input) quits. Ctrl+C during a reply stops the reply (what
/// was said stays in the conversation); at the prompt it quits. Works the same with piped input, minus the "&gt; "
/// prompt and the banner.
/// </summary>
static class ChatCommand
{
    public static Command Create()
    {
        var m = new ModelArgs();
        var s = new SamplingArgs(defaultMaxTokens: 256);
        var system = new Option<string?>("--system", "-s") { Description = "A system message that starts (and survives /reset of) the conversation." };
        var verbose = new Option<bool>("--stats") { Description = "After each reply, print tokens and speed on stderr." };
        var cmd = new Command("chat", "Chat with the model (the model's chat template; /reset clears the history, /exit quits).") { system, verbose };
        s.AddTo(cmd);
        m.AddTo(cmd);
        cmd.SetAction((r, cancel) => CliErrors.Run(() => Run(r, m, s.Settings(r), r.GetValue(system), r.GetValue(verbose), cancel)));
        return cmd;
    }

    static async Task<int> Run(ParseResult r, ModelArgs m, GenerationSettings settings, string? system, bool verbose, CancellationToken cancel)
    {
        // Ctrl+C: stops the reply being generated, else quits (this command runs without System.CommandLine's handler).
        using var quit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        CancellationTokenSource? reply = null;
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            var running = Volatile.Read(ref reply);
            if (running is { IsCancellationRequested: false }) running.Cancel();
            else quit.Cancel();
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            return await Converse(r, m, settings, system, verbose, quit.Token, c => Volatile.Write(ref reply, c));
        }
        catch (OperationCanceledException) when (quit.IsCancellationRequested)
        {
            Console.Out.WriteLine();
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    static async Task<int> Converse(ParseResult r, ModelArgs m, GenerationSettings settings, string? system, bool verbose, CancellationToken cancel,
        Action<CancellationTokenSource?> replying)
    {
        bool interactive = !Console.IsInputRedirected;
        using var model = m.Load(r, quiet: !interactive);
        if (!model.Info.HasChatTemplate)
            throw new NotSupportedException($"{model.Info.Path}: the model has no chat template (chat_template.jinja or tokenizer_config.json chat_template); use daop run");
        if (interactive)
            Console.Error.WriteLine($"daop chat: {model.Info.Name} ({model.Info.Architecture}, context {model.ContextLength} tokens). " +
                "/reset clears the history, /exit quits, Ctrl+C stops a reply.");
        var history = new List<ChatMessage>();
        void Reset()
        {
            history.Clear();
            if (!string.IsNullOrEmpty(system)) history.Add(new ChatMessage("system", system));
        }
        Reset();
        var stdout = Console.Out;
        // On a terminal: a line editor with this session's input history (Up/Down); piped: plain lines.
        var editor = interactive && !Console.IsOutputRedirected ? new LineEditor(() => Console.ReadKey(intercept: true), stdout, "> ") : null;
        while (!cancel.IsCancellationRequested)
        {
            string? line;
            if (editor != null) line = await Task.Run(editor.ReadLine, CancellationToken.None).WaitAsync(cancel);
            else
            {
                if (interactive)
                {
                    stdout.Write("> ");
                    stdout.Flush();
                }
                line = await Console.In.ReadLineAsync(cancel);
            }
            if (line == null) break;
            line = line.Trim();
            if (line.Length == 0) continue;
            if (line.StartsWith('/'))
            {
                switch (line.ToLowerInvariant())
                {
                    case "/exit" or "/quit" or "/bye":
                        return 0;
                    case "/reset" or "/clear":
                        Reset();
                        Console.Error.WriteLine("(history cleared)");
                        continue;
                    case "/help" or "/?":
                        Console.Error.WriteLine("/reset clears the conversation, /exit quits; anything else is sent to the model.");
                        continue;
                    default:
                        if (!line.StartsWith("//", StringComparison.Ordinal))
                        {
                            Console.Error.WriteLine($"unknown command {line.Split(' ')[0]} (/reset, /exit, /help; start with // to send a line beginning with /)");
                            continue;
                        }
                        line = line[1..];
                        break;
                }
            }
            history.Add(new ChatMessage("user", line));
            if (!Fit(model, history, settings))
            {
                Console.Error.WriteLine($"daop: the message is too long for the context of {model.ContextLength} tokens; it was not sent");
                history.RemoveAt(history.Count - 1);
                continue;
            }
            var stats = new GenerationStats();
            var reply = new StringBuilder();
            var reasoning = new StringBuilder();
            // A reply with reasoning (GPT-OSS's analysis channel, Qwen3's <think>): the answer goes to stdout and into the
            // history as the assistant's content, the reasoning to stderr and into the history as its reasoning (raw
            // harmony text as content is refused by GPT-OSS's template).
            var split = ReplySplitter.For(model.ToolCallFormat, toolCalls: false, model.ChatTemplate?.Thinks == true);
            void Show(IEnumerable<ReplyPart> parts)
            {
                foreach (var part in parts)
                    if (part.Reasoning != null)
                    {
                        reasoning.Append(part.Reasoning);
                        Console.Error.Write(part.Reasoning);
                    }
                    else if (part.Content != null)
                    {
                        reply.Append(part.Content);
                        stdout.Write(part.Content);
                    }
                stdout.Flush();
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            replying(stop);
            bool stopped = false;
            try
            {
                await foreach (string piece in model.ChatAsync(history, settings, stats, stop.Token))
                    Show(split?.Push(piece) ?? [new ReplyPart(piece, null, null)]);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested && !cancel.IsCancellationRequested)
            {
                stopped = true; // Ctrl+C: the reply so far stays in the conversation
            }
            finally
            {
                replying(null);
                if (split != null) Show(split.Flush());
            }
            stdout.WriteLine(stopped ? " [stopped]" : "");
            stdout.Flush();
            history.Add(new ChatMessage("assistant", reply.ToString()) { Reasoning = reasoning.Length > 0 ? reasoning.ToString() : null });
            if (verbose)
                Console.Error.WriteLine($"[daop] prompt {stats.PromptTokens} tok, {stats.PrefillTokensPerSecond:F1} tok/s | reply {stats.GeneratedTokens} tok, " +
                    $"{stats.DecodeTokensPerSecond:F1} tok/s | {(stopped ? "stopped" : stats.Finish.ToString().ToLowerInvariant())}");
        }
        return 0;
    }

    // Drops the oldest turns (never the system message or the new user turn) until the prompt leaves room for a reply of
    // at least min(max tokens, a quarter of the context). False if even the new turn alone does not fit.
    static bool Fit(DaopModel model, List<ChatMessage> history, GenerationSettings settings)
    {
        int room = Math.Max(1, Math.Min(settings.MaxTokens, model.ContextLength / 4));
        int first = history.Count > 0 && history[0].Role == "system" ? 1 : 0;
        while (true)
        {
            int tokens = model.ChatTokens(history).Length;
            if (tokens + room <= model.ContextLength) return true;
            if (history.Count - first <= 1) return tokens < model.ContextLength;
            history.RemoveAt(first);
            // Keep turns paired: a history that starts with an assistant reply confuses strict templates.
            if (history.Count - first > 1 && history[first].Role == "assistant") history.RemoveAt(first);
        }
    }
}
