using System.Net;

namespace Daop.Server;

/// <summary>Where <see cref="DaopServer"/> listens, who may call it, and the limits it enforces on every request.</summary>
public sealed record DaopServerOptions
{
    /// <summary>Address to listen on: an IP address or "localhost". Default 127.0.0.1 (this machine only).</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (see <see cref="DaopServer.BaseAddress"/>).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>The model id clients see in /v1/models and in responses. Default: the model folder's name.</summary>
    public string? ModelId { get; init; }

    /// <summary>
    /// When set, every request except <c>GET /health</c> must carry <c>Authorization: Bearer KEY</c> (401 otherwise).
    /// Default: none (any client that reaches the port may generate).
    /// </summary>
    public string? ApiKey { get; init; }
    /// <summary>
    /// Host header values accepted besides localhost, 127.0.0.1, [::1] and <see cref="Host"/> (any port); "*" accepts any.
    /// Other Host headers get 403, so a web page cannot reach the server through DNS rebinding. When listening on all
    /// interfaces (0.0.0.0 or ::), any IP address is accepted too: only a host name can be rebound.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>
    /// Web origins (e.g. <c>http://localhost:3000</c>) whose pages may call the server (CORS); "*" allows any. A request
    /// with an Origin header not listed gets 403. Default: none, so no web page can drive the server.
    /// </summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>Largest request body accepted (413 beyond). Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;
    /// <summary>Largest max_tokens a request may ask for (400 beyond). Default: the model's context length.</summary>
    public int? MaxTokensLimit { get; init; }
    /// <summary>max_tokens of a chat request that gives none (capped by the room left in the context).</summary>
    public int DefaultChatMaxTokens { get; init; } = 256;
    /// <summary>max_tokens of a completion request that gives none (OpenAI's default is 16).</summary>
    public int DefaultCompletionMaxTokens { get; init; } = 16;
    /// <summary>Most messages in one chat request (400 beyond). Default 2048.</summary>
    public int MaxMessages { get; init; } = 2048;
    /// <summary>Generation requests admitted at once, running or waiting their turn; more are refused with 429. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;
    /// <summary>Open connections at once; Kestrel closes new ones beyond it. Default 512.</summary>
    public long MaxConnections { get; init; } = 512;
    /// <summary>Time a client has to send its request line and headers before the connection is closed. Default 10 s.</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Time a client has to send its whole request body (408 beyond). Default 60 s.</summary>
    public TimeSpan RequestBodyTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// Longest a generation may run (prefill, decode and waiting for its turn); when it is up the reply ends there with
    /// finish_reason "length", as at max_tokens (llama.cpp's per-request time limit). Null (default): no limit.
    /// </summary>
    public TimeSpan? MaxGenerationTime { get; init; }
    /// <summary>Called with one line per request (method, path, status, time, tokens); null logs nothing.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Checks every value (before a model loads, if the caller likes); throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (MaxQueuedRequests < 1) throw new ArgumentException($"the request queue limit must be >= 1, got {MaxQueuedRequests}");
        if (MaxRequestBodyBytes < 1) throw new ArgumentException($"the body size limit must be >= 1, got {MaxRequestBodyBytes}");
        if (Port is < 0 or > 65535) throw new ArgumentException($"the port must be in 0..65535, got {Port}");
        if (Host != "localhost" && !IPAddress.TryParse(Host, out _)) throw new ArgumentException($"--host must be an IP address or 'localhost', got '{Host}'");
        if (MaxTokensLimit < 1) throw new ArgumentException($"the max_tokens limit must be >= 1, got {MaxTokensLimit}");
        if (MaxMessages < 1) throw new ArgumentException($"the messages limit must be >= 1, got {MaxMessages}");
        if (MaxConnections < 1) throw new ArgumentException($"the connection limit must be >= 1, got {MaxConnections}");
        if (MaxGenerationTime <= TimeSpan.Zero) throw new ArgumentException($"the generation time limit must be positive, got {MaxGenerationTime}");
        if (RequestHeadersTimeout <= TimeSpan.Zero || RequestBodyTimeout <= TimeSpan.Zero)
            throw new ArgumentException("the request timeouts must be positive");
        _ = new RequestGuard(this); // the API key, hosts and origins
    }

    /// <summary>True when <see cref="Host"/> is reachable from other machines (not localhost or a loopback address).</summary>
    public bool IsExposed => Host != "localhost" && !(IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>What a person starting the server should be warned about (empty when nothing): exposure without an API key.</summary>
    public IReadOnlyList<string> SecurityWarnings()
    {
        if (ApiKey != null) return [];
        var warnings = new List<string>();
        if (IsExposed)
            warnings.Add($"listening on {Host}, which other machines can reach, WITHOUT an API key: anyone on the network can use the model. " +
                "Set DAOP_API_KEY (or --api-key), or listen on 127.0.0.1.");
        if (CorsOrigins.Contains("*"))
            warnings.Add("--cors-origins * without an API key: any web page opened in a browser on a machine that reaches the server can use the model.");
        if (AllowedHosts.Contains("*"))
            warnings.Add("--allowed-hosts * without an API key: a web page can read /v1/models and /health through DNS rebinding.");
        return warnings;
    }
}
