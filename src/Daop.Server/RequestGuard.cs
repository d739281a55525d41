using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Daop.Server;

/// <summary>
/// The checks a request passes before its route, so that only the clients the server was started for can use it:
/// the Host header (against DNS rebinding), the Origin header (web pages: CORS only for configured origins), the API key,
/// and for bodies the JSON content type (any web page may POST text/plain anywhere without the browser asking first).
/// Each refusal is an <see cref="ApiException"/> in OpenAI's shape.
/// </summary>
sealed class RequestGuard
{
    readonly byte[]? _keyHash;          // SHA-256 of the API key's UTF-8 bytes; null: no key required
    readonly HashSet<string>? _hosts;   // accepted Host names (lower case, no brackets, no port); null: any
    readonly bool _anyIpHost;           // listening on all interfaces: an IP-literal Host cannot be a rebound name
    readonly HashSet<string>? _origins; // accepted Origin values; null: any

    public RequestGuard(DaopServerOptions o)
    {
        if (o.ApiKey != null)
        {
            if (o.ApiKey.Length == 0 || o.ApiKey.Any(c => c is <= ' ' or > '~'))
                throw new ArgumentException("the API key must be non-empty printable ASCII without spaces (it is sent in an HTTP header)");
            _keyHash = SHA256.HashData(Encoding.UTF8.GetBytes(o.ApiKey));
        }
        if (!o.AllowedHosts.Contains("*"))
        {
            _hosts = new(StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "::1" };
            foreach (string h in o.AllowedHosts.Append(o.Host))
            {
                if (string.IsNullOrWhiteSpace(h) || h.Contains('/'))
                    throw new ArgumentException($"allowed hosts are host names or addresses like example.com or 10.0.0.5, got '{h}'");
                _hosts.Add(HostName(h));
            }
            _anyIpHost = IPAddress.TryParse(o.Host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any));
        }
        if (!o.CorsOrigins.Contains("*"))
        {
            _origins = new(StringComparer.OrdinalIgnoreCase);
            foreach (string origin in o.CorsOrigins)
            {
                if (!Uri.TryCreate(origin, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https") ||
                    u.PathAndQuery != "/" || u.UserInfo.Length > 0 || u.Fragment.Length > 0)
                    throw new ArgumentException($"CORS origins are scheme://host[:port] like http://localhost:3000, got '{origin}'");
                _origins.Add(u.GetLeftPart(UriPartial.Authority)); // as browsers write it: lower case, no default port
            }
        }
    }

    /// <summary>
    /// Checks the Host and Origin headers and, unless <paramref name="open"/>, the API key; throws the refusal. Returns true
    /// when the request was a CORS preflight from an allowed origin, answered here (204).
    /// </summary>
    public bool Admit(HttpContext ctx, bool open)
    {
        var req = ctx.Request;
        string host = HostName(req.Host.Value ?? "");
        if (_hosts != null && host.Length > 0 && !_hosts.Contains(host) && !(_anyIpHost && IPAddress.TryParse(host, out _)))
            throw new ApiException(403, $"this server does not answer to the Host '{req.Host}' (a guard against DNS rebinding); " +
                $"start it with --allowed-hosts {host} to accept it", code: "host_not_allowed");

        string? origin = req.Headers.Origin;
        if (origin != null)
        {
            if (_origins != null && !_origins.Contains(origin))
                throw new ApiException(403, $"web pages from the origin '{origin}' may not call this server (CORS); " +
                    $"start it with --cors-origins {origin} to allow them", code: "origin_not_allowed");
            var headers = ctx.Response.Headers;
            headers.AccessControlAllowOrigin = origin;
            headers.Vary = HeaderNames.Origin;
            if (HttpMethods.IsOptions(req.Method) && req.Headers.ContainsKey(HeaderNames.AccessControlRequestMethod))
            {
                headers.AccessControlAllowMethods = "GET, POST, OPTIONS";
                var asked = req.Headers.AccessControlRequestHeaders;
                headers.AccessControlAllowHeaders = asked.Count > 0 ? asked : "Authorization, Content-Type";
                headers.AccessControlMaxAge = "600";
                ctx.Response.StatusCode = 204;
                return true;
            }
        }

        if (!open && !IsAuthorized(req))
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            throw new ApiException(401, req.Headers.Authorization.Count == 0
                    ? "You didn't provide an API key: send it in the header 'Authorization: Bearer KEY'."
                    : "Incorrect API key provided.",
                code: "invalid_api_key");
        }
        return false;
    }

    /// <summary>True when no key is required or the request carries it (compared in constant time).</summary>
    public bool IsAuthorized(HttpRequest req)
    {
        if (_keyHash == null) return true;
        string? auth = req.Headers.Authorization;
        if (auth == null || !auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        // Hashing first makes both sides 32 bytes, so the comparison's time tells nothing about the key's length or prefix.
        byte[] given = SHA256.HashData(Encoding.UTF8.GetBytes(auth[7..].Trim()));
        return CryptographicOperations.FixedTimeEquals(given, _keyHash);
    }

    /// <summary>Refuses a body that is not <c>application/json</c> (UTF-8) with 415.</summary>
    public static void RequireJson(HttpRequest req)
    {
        if (MediaTypeHeaderValue.TryParse(req.ContentType, out var type) &&
            type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) &&
            (!type.Charset.HasValue || type.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) ||
             type.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)))
            return;
        throw new ApiException(415, (req.ContentType == null ? "the request has no Content-Type" : $"the Content-Type '{req.ContentType}' is not supported") +
            ": send a JSON body with 'Content-Type: application/json' (curl -d needs -H 'Content-Type: application/json')", code: "unsupported_media_type");
    }

    // example.com:8080 / [::1]:80 / ::1 / Example.COM. → example.com / ::1 / ::1 / example.com
    static string HostName(string host) => new HostString(host).Host.Trim('[', ']').TrimEnd('.').ToLowerInvariant();
}
