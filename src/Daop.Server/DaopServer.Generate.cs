using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Daop.Server;

// The two generation routes and the response writers (streamed as server-sent events, or one JSON body).
public sealed partial class DaopServer
{
    async Task Chat(HttpContext ctx)
    {
        var req = OpenAiRequests.ParseChat(await ReadBody(ctx), _o, _model.ContextLength, _model.SamplingDefaults);
        bool tools = req.Tools.Count > 0;
        if (tools && _model.ToolCallFormat == null)
            throw ApiException.Invalid("tools", _model.ChatTemplate == null
                ? "this model has no chat template, so it cannot be offered tools"
                : $"this model's chat template describes no tool-call format this server parses ({ToolCallFormat.Known}): send the request without 'tools'",
                "unsupported_parameter");
        int[] prompt;
        try
        {
            prompt = _model.ChatTokens(req.Messages, req.Tools, req.TemplateVariables, ctx.RequestAborted); // a client that goes away stops the template's render
        }
        catch (NotSupportedException e)
        {
            throw new ApiException(400, e.Message, param: "messages", code: "no_chat_template");
        }
        catch (ChatTemplateException e)
        {
            throw new ApiException(400, $"the model's chat template rejected the messages: {e.Message}", param: "messages", code: "invalid_messages");
        }
        await Generate(ctx, chat: true, prompt, _model.ChatStopTokenIds, req.Common, "messages", echo: null, tools,
            reasons: _model.ToolCallSyntax == ToolCallSyntax.Harmony || _model.ChatTemplate?.Thinks == true);
    }

    async Task Completion(HttpContext ctx)
    {
        var req = OpenAiRequests.ParseCompletion(await ReadBody(ctx), _o, _model.ContextLength, _model.SamplingDefaults);
        int[] prompt = req.PromptTokens ?? _model.Tokenize(req.PromptText!, addSpecialTokens: true);
        int vocab = _model.Info.VocabSize;
        if (req.PromptTokens?.FirstOrDefault(id => id >= vocab, -1) is { } bad and >= 0)
            throw ApiException.Invalid("prompt", $"token id {bad} is outside the vocabulary [0, {vocab})");
        await Generate(ctx, chat: false, prompt, _model.StopTokenIds, req.Common, "prompt", req.Echo ? req.PromptText ?? _model.Tokenizer.Decode(prompt) : null);
    }

    // toolCalls: the replies are split into text and tool calls (the model's ToolCallFormat, its markers kept in the text),
    // as they stream or whole. reasons: they are split into answer, reasoning and tool calls (ReplySplitter), tools or not.
    async Task Generate(HttpContext ctx, bool chat, int[] prompt, IReadOnlyList<int> stopIds, CommonRequest req, string promptParam, string? echo,
        bool toolCalls = false, bool reasons = false)
    {
        bool split = toolCalls || reasons;
        if (prompt.Length == 0)
            throw ApiException.Invalid(promptParam, "the prompt is empty: it encodes to no tokens");
        if (prompt.Length >= _model.ContextLength)
            throw new ApiException(400,
                $"This model's maximum context length is {_model.ContextLength} tokens. However, your {(chat ? "messages" : "prompt")} resulted in {prompt.Length} tokens, " +
                "leaving no room for a reply. Please reduce the length of the " + (chat ? "messages." : "prompt."),
                param: promptParam, code: "context_length_exceeded");
        var settings = req.Settings with
        {
            MaxTokens = Math.Min(req.Settings.MaxTokens, _model.ContextLength - prompt.Length), KeepToolCallMarkers = split,
        };

        int n = req.Choices; // each choice is a generation of its own and counts against the admission limit
        if (Interlocked.Add(ref _inFlight, n) > _o.MaxQueuedRequests)
        {
            Interlocked.Add(ref _inFlight, -n);
            Interlocked.Increment(ref _rejected);
            throw new ApiException(429, $"the server is busy: {_o.MaxQueuedRequests} generations are already running or queued; retry later",
                "rate_limit_exceeded", code: "queue_full");
        }
        var stats = Enumerable.Range(0, n).Select(_ => new GenerationStats()).ToArray();
        try
        {
            using var limit = new CancellationTokenSource();
            if (_o.MaxGenerationTime is { } t) limit.CancelAfter(t);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, Stopping, limit.Token);
            var timedOut = new bool[n];
            var calls = new int[n]; // tool calls each choice has made
            string FinishOf(int i) => calls[i] > 0 ? "tool_calls" : timedOut[i] ? "length" : Finish(stats[i]);
            ctx.Items[TokensKey] = stats;
            // Choice i samples with seed + i, so sampled choices differ (greedy ones are the same text).
            var pieces = Enumerable.Range(0, n).Select(i => _model.GenerateAsync(prompt, stopIds,
                i == 0 ? settings : settings with { Seed = unchecked(settings.Seed + (ulong)i) }, stats[i], cts.Token)).ToArray();
            string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var r = new OpenAiResponses(id, created, _modelId, chat, settings.TopLogprobs != null ? TokenText : null);
            var offsets = new int[n]; // completions' text_offset: characters of each choice streamed so far
            if (req.Stream)
            {
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "text/event-stream; charset=utf-8";
                ctx.Response.Headers.CacheControl = "no-cache";
                ctx.Response.Headers["X-Accel-Buffering"] = "no";
                await ctx.Response.StartAsync(cts.Token);
                var body = ctx.Response.Body;
                for (int i = 0; i < n; i++)
                {
                    if (chat) await Event(body, r.ChunkRole(i), cts.Token);
                    if (echo != null) await Event(body, r.Chunk(i, echo), cts.Token);
                }
                var splitters = split ? Enumerable.Range(0, n).Select(_ => NewSplitter(toolCalls)).ToArray() : null;
                async Task Send(int i, IEnumerable<ReplyPart> parts)
                {
                    foreach (var (text, reasoning, call) in parts)
                        await Event(body, call != null ? r.ChunkToolCall(i, calls[i]++, call, Taken(stats[i]))
                            : reasoning != null ? r.ChunkReasoning(i, reasoning, Taken(stats[i])) : r.Chunk(i, text!, Taken(stats[i])), ctx.RequestAborted);
                }
                try
                {
                    await foreach (var (i, piece) in Merge(pieces.Select((p, i) => UntilLimit(p, limit, timedOut, i)).ToArray(), cts))
                    {
                        if (piece == null)
                        {
                            if (splitters != null) await Send(i, splitters[i].Flush());
                            await Event(body, r.ChunkFinish(i, FinishOf(i)), ctx.RequestAborted);
                            continue;
                        }
                        if (splitters != null)
                        {
                            await Send(i, splitters[i].Push(piece));
                            continue;
                        }
                        await Event(body, r.Chunk(i, piece, Taken(stats[i]), offsets[i] + (echo?.Length ?? 0)), ctx.RequestAborted);
                        offsets[i] += piece.Length;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException && !ctx.RequestAborted.IsCancellationRequested)
                {
                    // The status line is gone already: report the failure in the stream, as OpenAI does, and end it.
                    _o.Log?.Invoke($"error: {e}");
                    await Event(body, OpenAiResponses.Error(new ApiException(500, $"generation failed: {e.GetType().Name}: {e.Message}", "server_error")), cts.Token);
                    await body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cts.Token);
                    return;
                }
                if (req.IncludeUsage) await Event(body, r.ChunkUsage(stats), ctx.RequestAborted);
                await body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), ctx.RequestAborted);
                await body.FlushAsync(ctx.RequestAborted);
            }
            else
            {
                var texts = await Task.WhenAll(pieces.Select(async (p, i) =>
                {
                    var text = new StringBuilder(echo);
                    await foreach (string piece in UntilLimit(p, limit, timedOut, i)) text.Append(piece);
                    return text.ToString();
                }));
                var choices = texts.Select((t, i) =>
                {
                    var logprobs = Kept(Taken(stats[i]), t.Length - (echo?.Length ?? 0));
                    if (!split) return new OpenAiResponses.Choice(t, FinishOf(i), logprobs);
                    var (content, reasoning, made) = NewSplitter(toolCalls).Whole(t);
                    calls[i] = made.Count;
                    return new OpenAiResponses.Choice(content, FinishOf(i), logprobs, made, reasoning);
                }).ToArray();
                await WriteJson(ctx, 200, r.Whole(choices, stats));
            }
        }
        finally
        {
            foreach (var st in stats)
            {
                Interlocked.Add(ref _promptTokens, st.PromptTokens);
                Interlocked.Add(ref _generatedTokens, st.GeneratedTokens);
                Interlocked.Add(ref _prefillTicks, st.PrefillTime.Ticks);
                Interlocked.Add(ref _decodeTicks, st.DecodeTime.Ticks);
            }
            Interlocked.Add(ref _inFlight, -n);
            Interlocked.Increment(ref _served);
        }
    }

    /// <summary>
    /// The choices' pieces as they come, tagged with their index; a null piece marks the end of that choice. One choice is
    /// read directly; several run concurrently (batched when the model runs parallel sequences) through a channel. A
    /// failing choice ends the stream with its exception; the others are cancelled and awaited before this returns.
    /// </summary>
    static async IAsyncEnumerable<(int Index, string? Piece)> Merge(IAsyncEnumerable<string>[] choices, CancellationTokenSource cts)
    {
        if (choices.Length == 1)
        {
            await foreach (string piece in choices[0]) yield return (0, piece);
            yield return (0, null);
            yield break;
        }
        var ch = Channel.CreateUnbounded<(int, string?)>(new UnboundedChannelOptions { SingleReader = true });
        var producers = choices.Select((c, i) => Task.Run(async () =>
        {
            try
            {
                await foreach (string piece in c) await ch.Writer.WriteAsync((i, piece));
                await ch.Writer.WriteAsync((i, null));
            }
            catch (Exception e)
            {
                ch.Writer.TryComplete(e);
            }
        })).ToArray();
        try
        {
            for (int done = 0; done < choices.Length;)
            {
                var item = await Read(ch.Reader, cts.Token);
                if (item.Item2 == null) done++;
                yield return item;
            }
        }
        finally
        {
            if (!producers.All(p => p.IsCompleted)) cts.Cancel();
            await Task.WhenAll(producers);
        }
    }

    // The pieces of one choice until the generation time limit (MaxGenerationTime) cancels it: then it just ends,
    // marked in timedOut, and the reply finishes with "length". Other cancellations propagate.
    static async IAsyncEnumerable<string> UntilLimit(IAsyncEnumerable<string> pieces, CancellationTokenSource limit, bool[] timedOut, int i)
    {
        await using var e = pieces.GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await e.MoveNextAsync()) yield break;
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested)
            {
                timedOut[i] = true;
                yield break;
            }
            yield return e.Current;
        }
    }

    // A choice that failed completed the channel with its exception: rethrow that, not the channel's wrapper.
    static async ValueTask<(int, string?)> Read(ChannelReader<(int, string?)> reader, CancellationToken cancel)
    {
        try
        {
            return await reader.ReadAsync(cancel);
        }
        catch (ChannelClosedException e) when (e.InnerException != null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    // The token's spelling in log-probabilities (special tokens spelled out); one token alone, so a character split
    // across tokens shows as U+FFFD.
    string TokenText(int id) => _model.Tokenizer.Decode([id], skipSpecialTokens: false);

    // The log-probabilities a choice has recorded and nobody has taken yet; null when none were asked for.
    static List<TokenLogprob>? Taken(GenerationStats s)
    {
        if (s.Logprobs is not { } q) return null;
        var list = new List<TokenLogprob>();
        while (q.TryDequeue(out var lp)) list.Add(lp);
        return list;
    }

    // A whole reply's log-probabilities up to its text: tokens generated past a stop sequence (which the text leaves out)
    // are dropped once their spelled-out lengths pass the text's.
    List<TokenLogprob>? Kept(List<TokenLogprob>? lps, int textLength)
    {
        if (lps == null) return null;
        int at = 0, keep = 0;
        while (keep < lps.Count && at < textLength) at += TokenText(lps[keep++].Token).Length;
        return lps.GetRange(0, keep);
    }

    static string Finish(GenerationStats s) => s.Finish == FinishReason.Stop ? "stop" : "length";

    static async Task Event(Stream body, byte[] json, CancellationToken cancel)
    {
        var line = new byte[json.Length + 8];
        "data: "u8.CopyTo(line);
        json.CopyTo(line, 6);
        line[^2] = (byte)'\n';
        line[^1] = (byte)'\n';
        await body.WriteAsync(line, cancel);
        await body.FlushAsync(cancel);
    }

    // The splitter of one choice's reply (split: there is one).
    ReplySplitter NewSplitter(bool toolCalls) => ReplySplitter.For(_model.ToolCallFormat, toolCalls, _model.ChatTemplate?.Thinks == true)!;
}
