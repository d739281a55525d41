namespace Daop.Server;

/// <summary>
/// A request the server refuses, answered as OpenAI does: the HTTP status and
/// <c>{"error": {"message", "type", "param", "code"}}</c>.
/// </summary>
/// <param name="status">HTTP status (4xx for client mistakes).</param>
/// <param name="message">What is wrong, for a person.</param>
/// <param name="type">OpenAI's error type, e.g. <c>invalid_request_error</c>.</param>
/// <param name="param">The request field at fault, if one is.</param>
/// <param name="code">A machine-readable code, e.g. <c>context_length_exceeded</c>.</param>
public sealed class ApiException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null)
    : Exception(message)
{
    /// <summary>HTTP status.</summary>
    public int Status { get; } = status;
    /// <summary>OpenAI's error type.</summary>
    public string Type { get; } = type;
    /// <summary>The request field at fault, or null.</summary>
    public string? Param { get; } = param;
    /// <summary>A machine-readable code, or null.</summary>
    public string? Code { get; } = code;

    internal static ApiException Invalid(string param, string message, string? code = "invalid_value") => new(400, message, param: param, code: code);
}
