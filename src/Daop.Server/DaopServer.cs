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

/// <summary>
/// An OpenAI-compatible HTTP server for one <see cref="DaopModel"/>: <c>POST /v1/chat/completions</c>,
/// <c>POST /v1/completions</c> (both with <c>"stream": true</c> server-sent events), <c>GET /v1/models</c> and
/// <c>GET /health</c>.
/// </summary>
/// <remarks>
/// Requests share the one model: they are admitted up to <see cref="DaopServerOptions.MaxQueuedRequests"/> (429 beyond)
/// and generate one at a time in arrival order. A client that disconnects cancels its own generation, queued or running.
/// Every refusal is a 4xx with OpenAI's error body <c>{"error": {"message", "type", "param", "code"}}</c>. Before any
/// route, <see cref="RequestGuard"/> checks the Host and Origin headers and the API key (see <see cref="DaopServerOptions"/>).
/// </remarks>
public sealed partial class DaopServer : IAsyncDisposable
{
    readonly DaopModel _model;
    readonly DaopServerOptions _o;
    readonly WebApplication _app;
    readonly RequestGuard _guard;
    readonly string _modelId;
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    const string TokensKey = "daop.stats";
    int _inFlight;
    long _served;
    // /metrics counters: tokens and model time of finished generations, and requests refused for a full queue.
    long _promptTokens, _generatedTokens, _prefillTicks, _decodeTicks, _rejected;

    DaopServer(DaopModel model, DaopServerOptions options)
    {
        _model = model;
        _o = options;
        _modelId = options.ModelId ?? model.Info.Name;
        options.Validate();
        _guard = new RequestGuard(options);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Our own check answers 413 in OpenAI's shape. Kestrel's limit is the backstop; it is set higher so that after a
            // 413 Kestrel can drain a body somewhat over the limit and the client, still sending, reads the answer instead of
            // a broken pipe. Bodies beyond it get the connection closed.
            k.Limits.MaxRequestBodySize = Math.Max(options.MaxRequestBodyBytes * 8, options.MaxRequestBodyBytes + (16 << 20));
            // Slow clients (slowloris): headers must arrive within the timeout, bodies at 240 B/s or better after 5 s (Kestrel's
            // default, written out) and whole within RequestBodyTimeout (ReadBody); a reader slower than 240 B/s is dropped, so a
            // stalled stream cannot hold the model. Headers stay within Kestrel's defaults (100 headers, 32 KiB; 431 beyond).
            k.Limits.RequestHeadersTimeout = options.RequestHeadersTimeout;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            k.Limits.MinResponseDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            k.Limits.MaxConcurrentConnections = options.MaxConnections;
            k.AddServerHeader = false;
            if (options.Host is "localhost") k.ListenLocalhost(options.Port);
            else k.Listen(IPAddress.Parse(options.Host), options.Port); // checked by Validate
        });
        _app = builder.Build();
        _app.Map("/v1/chat/completions", ctx => Handle(ctx, "POST", Chat));
        _app.Map("/v1/completions", ctx => Handle(ctx, "POST", Completion));
        _app.Map("/v1/models", ctx => Handle(ctx, "GET", Models));
        _app.Map("/v1/embeddings", ctx => Handle(ctx, "POST", Embeddings));
        _app.Map("/tokenize", ctx => Handle(ctx, "POST", Tokenize));
        _app.Map("/metrics", ctx => Handle(ctx, "GET", Metrics));
        _app.Map("/detokenize", ctx => Handle(ctx, "POST", Detokenize));
        _app.Map("/v1/models/{id}", ctx => Handle(ctx, "GET", Model));
        _app.Map("/health", ctx => Handle(ctx, "GET", Health, open: true));
        _app.MapFallback(ctx => Handle(ctx, null, c =>
            throw new ApiException(404, $"Invalid URL ({c.Request.Method} {c.Request.Path}): see /v1/chat/completions, /v1/completions, /v1/models, /health",
                code: "unknown_url")));
    }

    /// <summary>Builds the server and starts listening; the task completes once it accepts connections.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="IOException">The address is in use or cannot be bound (the message names it).</exception>
    public static async Task<DaopServer> StartAsync(DaopModel model, DaopServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new DaopServerOptions();
        var server = new DaopServer(model, options);
        try
        {
            await server._app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await server._app.DisposeAsync().ConfigureAwait(false);
            if (e is IOException or SocketException)
            {
                string address = (IPAddress.TryParse(options.Host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6
                    ? $"[{options.Host}]" : options.Host) + ":" + options.Port;
                string reason = (e.InnerException ?? e).Message.TrimEnd('.');
                throw new IOException($"cannot listen on {address}: {reason}", e);
            }
            throw;
        }
        return server;
    }

    /// <summary>The address the server listens on, e.g. http://127.0.0.1:8080/ (with the real port when 0 was asked for).</summary>
    public Uri BaseAddress
    {
        get
        {
            var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
            return new Uri(addresses.First().Replace("[::]", "localhost", StringComparison.Ordinal) + "/");
        }
    }

    /// <summary>The model id clients see.</summary>
    public string ModelId => _modelId;

    /// <summary>Generation requests answered so far (successfully or not, once admitted).</summary>
    public long RequestsServed => Interlocked.Read(ref _served);

    /// <summary>Completes when the host shuts down (Ctrl+C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops accepting requests, cancels running generations and waits (up to 5 s) for them to end.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try { await _app.StopAsync().ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    CancellationToken Stopping => _app.Lifetime.ApplicationStopping;

    // open: no API key needed (/health).
    async Task Handle(HttpContext ctx, string? method, Func<HttpContext, Task> handler, bool open = false)
    {
        long t0 = Stopwatch.GetTimestamp();
        string requestId = RequestId(ctx);
        ctx.Response.Headers["X-Request-Id"] = requestId;
        try
        {
            if (_guard.Admit(ctx, open)) return;
            if (method != null && !HttpMethods.Equals(ctx.Request.Method, method))
            {
                ctx.Response.Headers.Allow = method;
                throw new ApiException(405, $"{ctx.Request.Method} is not allowed on {ctx.Request.Path}: use {method}", code: "method_not_allowed");
            }
            await handler(ctx);
        }
        catch (ApiException e) when (!ctx.Response.HasStarted)
        {
            await WriteError(ctx, e);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e) when (!ctx.Response.HasStarted)
        {
            await WriteError(ctx, new ApiException(e.StatusCode, e.Message,
                code: e.StatusCode == 413 ? "request_too_large" : "bad_request"));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested || Stopping.IsCancellationRequested)
        {
            // The client went away (or the server is stopping): nobody is left to answer.
            if (!ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested)
                await WriteError(ctx, new ApiException(503, "the server is shutting down", "server_error", code: "shutting_down"));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException && ctx.RequestAborted.IsCancellationRequested)
        {
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            _o.Log?.Invoke($"error: {e}");
            await WriteError(ctx, new ApiException(500, $"internal error: {e.GetType().Name}: {e.Message}", "server_error"));
        }
        finally
        {
            _o.Log?.Invoke($"{requestId} {ctx.Request.Method} {ctx.Request.Path} {ctx.Response.StatusCode} {Stopwatch.GetElapsedTime(t0).TotalMilliseconds:F0} ms" +
                (ctx.Items[TokensKey] is GenerationStats[] s ? $" {s.Max(x => x.PromptTokens)}+{s.Sum(x => x.GeneratedTokens)} tok" : "") +
                (ctx.RequestAborted.IsCancellationRequested ? " (client disconnected)" : ""));
        }
    }

    /// <summary>Longest client-given X-Request-Id kept; longer ones, or ones with other than [A-Za-z0-9._-], are replaced.</summary>
    public const int MaxRequestIdLength = 128;

    // The client's X-Request-Id when it is a plain token (so it can go into logs as it is), else a new one.
    static string RequestId(HttpContext ctx)
    {
        string? given = ctx.Request.Headers["X-Request-Id"];
        if (given is { Length: > 0 and <= MaxRequestIdLength } && given.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return given;
        return "req-" + Guid.NewGuid().ToString("N")[..16];
    }

    static async Task WriteError(HttpContext ctx, ApiException e)
    {
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json";
        if (e.Status == 429) ctx.Response.Headers.RetryAfter = "1";
        if (e.Status == 408) ctx.Response.Headers.Connection = "close";
        await ctx.Response.Body.WriteAsync(OpenAiResponses.Error(e));
    }

    async Task<byte[]> ReadBody(HttpContext ctx)
    {
        RequestGuard.RequireJson(ctx.Request);
        long limit = _o.MaxRequestBodyBytes;
        if (ctx.Request.ContentLength > limit)
            throw new ApiException(413, $"the request body is {ctx.Request.ContentLength} bytes; the limit is {limit}", code: "request_too_large");
        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(limit, Math.Max(ctx.Request.ContentLength ?? 4096, 16)) + 1);
        var body = ctx.Request.Body;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        deadline.CancelAfter(_o.RequestBodyTimeout);
        try
        {
            while (true)
            {
                var span = buffer.GetMemory(4096);
                int n = await body.ReadAsync(span, deadline.Token);
                if (n == 0) break;
                buffer.Advance(n);
                if (buffer.WrittenCount > limit)
                    throw new ApiException(413, $"the request body is larger than the limit of {limit} bytes", code: "request_too_large");
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            throw new ApiException(408, $"the request body did not arrive within {_o.RequestBodyTimeout.TotalSeconds:0.#} s", code: "request_timeout");
        }
        return buffer.WrittenSpan.ToArray();
    }

    // Without the API key (when one is set) only "status": the model and the load are for clients of the API.
    Task Health(HttpContext ctx) => WriteJson(ctx, 200, _guard.IsAuthorized(ctx.Request)
        ? OpenAiResponses.Health(_modelId, _model, Volatile.Read(ref _inFlight), RequestsServed)
        : OpenAiResponses.HealthStatus());

    async Task Embeddings(HttpContext ctx)
    {
        var (inputs, base64) = OpenAiRequests.ParseEmbeddings(await ReadBody(ctx), _model.Info.HiddenSize);
        var vectors = new List<float[]>(inputs.Count);
        int tokens = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            if (_model.Tokenize(inputs[i]).Length > _model.ContextLength)
                throw ApiException.Invalid("input", $"input {i} has more tokens than the context ({_model.ContextLength})", "context_length_exceeded");
            var (v, n) = await _model.EmbedAsync(inputs[i], ctx.RequestAborted);
            vectors.Add(v);
            tokens += n;
        }
        await WriteJson(ctx, 200, OpenAiResponses.Embeddings(_modelId, vectors, tokens, base64));
    }

    // Prometheus text exposition (version 0.0.4), behind the API key like every route but /health.
    async Task Metrics(HttpContext ctx)
    {
        var sb = new StringBuilder();
        void Metric(string name, string type, string help, double value)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            sb.Append(name).Append(' ').Append(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }
        Metric("daop_requests_total", "counter", "Generation requests finished (completed, failed or cancelled).", RequestsServed);
        Metric("daop_requests_rejected_total", "counter", "Generation requests refused with 429 because the queue was full.", Interlocked.Read(ref _rejected));
        Metric("daop_requests_in_flight", "gauge", "Generation requests admitted: running or waiting for the model.", Volatile.Read(ref _inFlight));
        Metric("daop_requests_queued", "gauge", "Generations waiting for the model.", _model.QueuedGenerations);
        Metric("daop_generations_running", "gauge", "Generations running now (in a batch slot, or holding the model).", _model.RunningGenerations);
        Metric("daop_parallel_slots", "gauge", "Most generations decoded together (--parallel).", _model.Parallel);
        Metric("daop_prompt_tokens_total", "counter", "Prompt tokens prefilled.", Interlocked.Read(ref _promptTokens));
        Metric("daop_generated_tokens_total", "counter", "Tokens generated.", Interlocked.Read(ref _generatedTokens));
        Metric("daop_prefill_seconds_total", "counter", "Time spent in prefill.", TimeSpan.FromTicks(Interlocked.Read(ref _prefillTicks)).TotalSeconds);
        Metric("daop_decode_seconds_total", "counter", "Time spent in decode steps.", TimeSpan.FromTicks(Interlocked.Read(ref _decodeTicks)).TotalSeconds);
        if (_model.ExpertCounts is { } e)
        {
            // Offloaded experts: where routed (token, expert) pairs ran, and what was copied to the GPU for them.
            Metric("daop_expert_activations_total", "counter", "Routed (token, expert) pairs.", e.Activations);
            Metric("daop_expert_hits_total", "counter", "Activations whose expert held a GPU slot.", e.Hits);
            Metric("daop_expert_gpu_runs_total", "counter", "Activations run on the GPU (hits, copies on miss, streamed prefill experts).", e.GpuExpertRuns);
            Metric("daop_expert_cpu_runs_total", "counter", "Activations run by CPU experts.", e.CpuExpertRuns);
            Metric("daop_expert_transfers_total", "counter", "Experts copied host to GPU after the initial placement.", e.Transfers);
            Metric("daop_expert_transfer_bytes_total", "counter", "Bytes of those copies.", e.TransferBytes);
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await ctx.Response.WriteAsync(sb.ToString(), ctx.RequestAborted);
    }

    async Task Tokenize(HttpContext ctx)
    {
        var (text, add) = OpenAiRequests.ParseTokenize(await ReadBody(ctx));
        await WriteJson(ctx, 200, OpenAiResponses.Tokens(_model.Tokenize(text, add), _model.ContextLength));
    }

    async Task Detokenize(HttpContext ctx)
    {
        var ids = OpenAiRequests.ParseDetokenize(await ReadBody(ctx));
        int vocab = _model.Info.VocabSize;
        if (ids.FirstOrDefault(id => id >= vocab, -1) is { } bad and >= 0)
            throw ApiException.Invalid("tokens", $"token id {bad} is outside the vocabulary [0, {vocab})");
        await WriteJson(ctx, 200, OpenAiResponses.Text(_model.Tokenizer.Decode(ids, skipSpecialTokens: false)));
    }

    Task Models(HttpContext ctx) => WriteJson(ctx, 200, OpenAiResponses.ModelList(_modelId, _created, _model.ContextLength));

    Task Model(HttpContext ctx)
    {
        string id = (string)ctx.Request.RouteValues["id"]!;
        if (id != _modelId) throw new ApiException(404, $"The model '{id}' does not exist (this server serves '{_modelId}')", param: "model", code: "model_not_found");
        return WriteJson(ctx, 200, OpenAiResponses.ModelObject(_modelId, _created, _model.ContextLength));
    }

    static async Task WriteJson(HttpContext ctx, int status, byte[] json)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(json, ctx.RequestAborted);
    }
}
