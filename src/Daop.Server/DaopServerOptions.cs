namespace Daop.Server;

/// <summary>Where <see cref="DaopServer"/> listens and the limits it enforces on every request.</summary>
public sealed record DaopServerOptions
{
    /// <summary>Address to listen on: an IP address or "localhost". Default 127.0.0.1 (this machine only).</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (see <see cref="DaopServer.BaseAddress"/>).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>The model id clients see in /v1/models and in responses. Default: the model folder's name.</summary>
    public string? ModelId { get; init; }
    /// <summary>Largest request body accepted (413 beyond). Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;
    /// <summary>Largest max_tokens a request may ask for (400 beyond). Default: the model's context length.</summary>
    public int? MaxTokensLimit { get; init; }
    /// <summary>max_tokens of a chat request that gives none (capped by the room left in the context).</summary>
    public int DefaultChatMaxTokens { get; init; } = 256;
    /// <summary>max_tokens of a completion request that gives none (OpenAI's default is 16).</summary>
    public int DefaultCompletionMaxTokens { get; init; } = 16;
    /// <summary>Generation requests admitted at once, running or waiting their turn; more are refused with 429. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;
    /// <summary>Called with one line per request (method, path, status, time, tokens); null logs nothing.</summary>
    public Action<string>? Log { get; init; }
}
