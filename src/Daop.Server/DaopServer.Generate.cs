using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
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
        int[] prompt;
        try
        {
            prompt = _model.ChatTokens(req.Messages, ctx.RequestAborted); // a client that goes away stops the template's render
        }
        catch (NotSupportedException e)
        {
            throw new ApiException(400, e.Message, param: "messages", code: "no_chat_template");
        }
        catch (ChatTemplateException e)
        {
            throw new ApiException(400, $"the model's chat template rejected the messages: {e.Message}", param: "messages", code: "invalid_messages");
        }
        await Generate(ctx, chat: true, prompt, _model.ChatStopTokenIds, req.Common, "messages", echo: null);
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

    async Task Generate(HttpContext ctx, bool chat, int[] prompt, IReadOnlyList<int> stopIds, CommonRequest req, string promptParam, string? echo)
    {
        if (prompt.Length == 0)
            throw ApiException.Invalid(promptParam, "the prompt is empty: it encodes to no tokens");
        if (prompt.Length >= _model.ContextLength)
            throw new ApiException(400,
                $"This model's maximum context length is {_model.ContextLength} tokens. However, your {(chat ? "messages" : "prompt")} resulted in {prompt.Length} tokens, " +
                "leaving no room for a reply. Please reduce the length of the " + (chat ? "messages." : "prompt."),
                param: promptParam, code: "context_length_exceeded");
        var settings = req.Settings with { MaxTokens = Math.Min(req.Settings.MaxTokens, _model.ContextLength - prompt.Length) };

        if (Interlocked.Increment(ref _inFlight) > _o.MaxQueuedRequests)
        {
            Interlocked.Decrement(ref _inFlight);
            Interlocked.Increment(ref _rejected);
            throw new ApiException(429, $"the server is busy: {_o.MaxQueuedRequests} requests are already running or queued; retry later",
                "rate_limit_exceeded", code: "queue_full");
        }
        var stats = new GenerationStats();
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, Stopping);
            ctx.Items[TokensKey] = stats;
            var pieces = _model.GenerateAsync(prompt, stopIds, settings, stats, cts.Token);
            string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var r = new OpenAiResponses(id, created, _modelId, chat);
            if (req.Stream)
            {
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "text/event-stream; charset=utf-8";
                ctx.Response.Headers.CacheControl = "no-cache";
                ctx.Response.Headers["X-Accel-Buffering"] = "no";
                await ctx.Response.StartAsync(cts.Token);
                var body = ctx.Response.Body;
                if (chat) await Event(body, r.ChunkRole(), cts.Token);
                if (echo != null) await Event(body, r.Chunk(echo), cts.Token);
                try
                {
                    await foreach (string piece in pieces)
                        await Event(body, r.Chunk(piece), cts.Token);
                }
                catch (Exception e) when (e is not OperationCanceledException && !ctx.RequestAborted.IsCancellationRequested)
                {
                    // The status line is gone already: report the failure in the stream, as OpenAI does, and end it.
                    _o.Log?.Invoke($"error: {e}");
                    await Event(body, OpenAiResponses.Error(new ApiException(500, $"generation failed: {e.GetType().Name}: {e.Message}", "server_error")), cts.Token);
                    await body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cts.Token);
                    return;
                }
                await Event(body, r.ChunkFinish(Finish(stats)), cts.Token);
                if (req.IncludeUsage) await Event(body, r.ChunkUsage(stats), cts.Token);
                await body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cts.Token);
                await body.FlushAsync(cts.Token);
            }
            else
            {
                var text = new StringBuilder(echo);
                await foreach (string piece in pieces) text.Append(piece);
                await WriteJson(ctx, 200, r.Whole(text.ToString(), Finish(stats), stats));
            }
        }
        finally
        {
            Interlocked.Add(ref _promptTokens, stats.PromptTokens);
            Interlocked.Add(ref _generatedTokens, stats.GeneratedTokens);
            Interlocked.Add(ref _prefillTicks, stats.PrefillTime.Ticks);
            Interlocked.Add(ref _decodeTicks, stats.DecodeTime.Ticks);
            Interlocked.Decrement(ref _inFlight);
            Interlocked.Increment(ref _served);
        }
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
}
