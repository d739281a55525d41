using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Daop.Server;
using static Daop.Tests.Server.ServerInputTests;

namespace Daop.Tests.Server;

/// <summary>
/// Who may use the server: the API key, the Host header (DNS rebinding), the Origin header and content type (web pages),
/// slow clients, and what a failed bind says. Each server here runs on the shared model with its own options.
/// </summary>
public sealed class ServerAccessTests(ServerFixture f) : IClassFixture<ServerFixture>
{
    const string Key = "sk-daop-test-0123456789";
    const string CompletionBody = """{"prompt": "def f():", "max_tokens": 2, "temperature": 0}""";

    static async Task<(int Status, JsonElement Body, HttpResponseMessage Response)> Send(HttpClient http, HttpMethod method, string path,
        Action<HttpRequestMessage>? setup = null, string? body = null, string? contentType = "application/json")
    {
        using var req = new HttpRequestMessage(method, path);
        if (body != null)
        {
            req.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            if (contentType != null) req.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }
        setup?.Invoke(req);
        var resp = await http.SendAsync(req);
        string text = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), resp);
    }

    static Action<HttpRequestMessage> Header(string name, string value) => r => r.Headers.TryAddWithoutValidation(name, value);

    [Fact]
    public async Task PostsMustBeJson()
    {
        // A web page may send these to any address without asking the browser first (a "simple" request).
        foreach (string? type in new[] { "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", null,
                                         "application/json; charset=utf-16", "application/jsonx", "application/json-seq" })
        {
            long served = f.Server.RequestsServed;
            var (status, json, resp) = await Send(f.Http, HttpMethod.Post, "v1/completions", body: CompletionBody, contentType: type);
            resp.Dispose();
            Assert.True(status == 415, $"{type ?? "(none)"}: {status}");
            AssertClientError(json, "unsupported_media_type");
            Assert.Equal(served, f.Server.RequestsServed);
        }
        foreach (string type in new[] { "application/json", "Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8" })
        {
            var (status, _, resp) = await Send(f.Http, HttpMethod.Post, "v1/completions", body: CompletionBody, contentType: type);
            resp.Dispose();
            Assert.True(status == 200, $"{type}: {status}");
        }
    }

    [Fact]
    public async Task ForeignHostHeadersAre403()
    {
        foreach (string host in new[] { "evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "0.0.0.0" })
            foreach (var (method, path, body) in new[] { (HttpMethod.Get, "v1/models", (string?)null), (HttpMethod.Get, "health", null), (HttpMethod.Post, "v1/completions", CompletionBody) })
            {
                var (status, json, resp) = await Send(f.Http, method, path, r => r.Headers.Host = host, body);
                resp.Dispose();
                Assert.True(status == 403, $"Host {host} {path}: {status}");
                AssertClientError(json, "host_not_allowed");
            }
        foreach (string host in new[] { "localhost", "LOCALHOST:1234", "localhost.", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080" })
        {
            var (status, _, resp) = await Send(f.Http, HttpMethod.Get, "v1/models", r => r.Headers.Host = host);
            resp.Dispose();
            Assert.True(status == 200, $"Host {host}: {status}");
        }

        await using var server = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, AllowedHosts = ["api.example.com", "10.1.2.3"] });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        foreach (var (host, expected) in new[] { ("api.example.com", 200), ("API.example.com:443", 200), ("10.1.2.3:8080", 200), ("localhost", 200),
                                                  ("evil.example", 403), ("10.1.2.4", 403) })
        {
            var (status, _, resp) = await Send(http, HttpMethod.Get, "v1/models", r => r.Headers.Host = host);
            resp.Dispose();
            Assert.True(status == expected, $"Host {host}: {status}");
        }

        await using var any = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, AllowedHosts = ["*"] });
        using var anyHttp = new HttpClient { BaseAddress = any.BaseAddress };
        var (anyStatus, _, anyResp) = await Send(anyHttp, HttpMethod.Get, "v1/models", r => r.Headers.Host = "evil.example");
        anyResp.Dispose();
        Assert.Equal(200, anyStatus);
    }

    [Fact]
    public async Task ForeignOriginsAre403AndNothingRuns()
    {
        foreach (string origin in new[] { "http://evil.example", "null", "http://localhost:3000", "http://127.0.0.1:8080" })
        {
            long served = f.Server.RequestsServed;
            // The attack as a page would make it: text/plain, no preflight.
            var (status, json, resp) = await Send(f.Http, HttpMethod.Post, "v1/completions", Header("Origin", origin), CompletionBody, "text/plain");
            Assert.True(status == 403, $"Origin {origin}: {status}");
            AssertClientError(json, "origin_not_allowed");
            Assert.False(resp.Headers.Contains("Access-Control-Allow-Origin"));
            resp.Dispose();
            // Even with the right content type (which a page could only send after a preflight).
            (status, json, resp) = await Send(f.Http, HttpMethod.Post, "v1/completions", Header("Origin", origin), CompletionBody);
            resp.Dispose();
            Assert.Equal(403, status);
            Assert.Equal(served, f.Server.RequestsServed);
            (status, _, resp) = await Send(f.Http, HttpMethod.Get, "v1/models", Header("Origin", origin));
            resp.Dispose();
            Assert.Equal(403, status);
            (status, _, resp) = await Send(f.Http, HttpMethod.Options, "v1/chat/completions", r =>
            {
                r.Headers.TryAddWithoutValidation("Origin", origin);
                r.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
                r.Headers.TryAddWithoutValidation("Access-Control-Request-Headers", "content-type");
            });
            Assert.Equal(403, status);
            Assert.False(resp.Headers.Contains("Access-Control-Allow-Origin"));
            resp.Dispose();
        }
    }

    [Fact]
    public async Task ConfiguredOriginsGetCors()
    {
        await using var server = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, CorsOrigins = ["http://localhost:3000", "https://app.example.com:443"], ApiKey = Key });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        foreach (string origin in new[] { "http://localhost:3000", "https://app.example.com" })
        {
            // The preflight carries no Authorization header.
            var (status, _, resp) = await Send(http, HttpMethod.Options, "v1/chat/completions", r =>
            {
                r.Headers.TryAddWithoutValidation("Origin", origin);
                r.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
                r.Headers.TryAddWithoutValidation("Access-Control-Request-Headers", "authorization, content-type");
            });
            Assert.Equal(204, status);
            Assert.Equal(origin, resp.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Contains("POST", resp.Headers.GetValues("Access-Control-Allow-Methods").Single());
            Assert.Contains("authorization", resp.Headers.GetValues("Access-Control-Allow-Headers").Single(), StringComparison.OrdinalIgnoreCase);
            resp.Dispose();

            (status, _, resp) = await Send(http, HttpMethod.Post, "v1/completions", r =>
            {
                r.Headers.TryAddWithoutValidation("Origin", origin);
                r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
            }, CompletionBody);
            Assert.Equal(200, status);
            Assert.Equal(origin, resp.Headers.GetValues("Access-Control-Allow-Origin").Single());
            resp.Dispose();

            // Errors carry the header too, so the page can read them.
            (status, _, resp) = await Send(http, HttpMethod.Get, "v1/models", Header("Origin", origin));
            Assert.Equal(401, status);
            Assert.Equal(origin, resp.Headers.GetValues("Access-Control-Allow-Origin").Single());
            resp.Dispose();
        }
        var (other, _, otherResp) = await Send(http, HttpMethod.Get, "v1/models", r =>
        {
            r.Headers.TryAddWithoutValidation("Origin", "http://localhost:3001");
            r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        });
        otherResp.Dispose();
        Assert.Equal(403, other);

        await using var any = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, CorsOrigins = ["*"] });
        using var anyHttp = new HttpClient { BaseAddress = any.BaseAddress };
        var (anyStatus, _, anyResp) = await Send(anyHttp, HttpMethod.Get, "v1/models", Header("Origin", "http://anything.example"));
        Assert.Equal(200, anyStatus);
        Assert.Equal("http://anything.example", anyResp.Headers.GetValues("Access-Control-Allow-Origin").Single());
        anyResp.Dispose();
    }

    [Fact]
    public async Task ApiKeyIsRequiredOnEveryRouteButHealth()
    {
        await using var server = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, ApiKey = Key });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var requests = new (HttpMethod Method, string Path, string? Body)[]
        {
            (HttpMethod.Get, "v1/models", null), (HttpMethod.Get, "v1/models/tiny-mixtral-code", null), (HttpMethod.Post, "v1/completions", CompletionBody),
            (HttpMethod.Post, "v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}"""),
            (HttpMethod.Get, "v1/engines", null), (HttpMethod.Delete, "v1/models", null), (HttpMethod.Get, "", null),
        };
        string?[] wrong = [null, "Bearer", "Bearer ", "Bearer sk-daop-test-012345678", "Bearer " + Key + "0", "Bearer " + Key.ToUpperInvariant(),
            "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + Key)), Key, "Bearer " + Key + ", Bearer " + Key];
        long served = server.RequestsServed;
        foreach (var (method, path, body) in requests)
            foreach (string? auth in wrong)
            {
                var (status, json, resp) = await Send(http, method, path, r => { if (auth != null) r.Headers.TryAddWithoutValidation("Authorization", auth); }, body);
                Assert.True(status == 401, $"{method} /{path} with '{auth}': {status}");
                AssertClientError(json, "invalid_api_key");
                Assert.Equal("Bearer", resp.Headers.WwwAuthenticate.Single().Scheme);
                Assert.DoesNotContain(Key, json.ToString());
                resp.Dispose();
            }
        Assert.Equal(served, server.RequestsServed);

        foreach (string auth in new[] { "Bearer " + Key, "bearer " + Key, "BEARER  " + Key + " " })
        {
            var (status, _, resp) = await Send(http, HttpMethod.Post, "v1/completions", r => r.Headers.TryAddWithoutValidation("Authorization", auth), CompletionBody);
            resp.Dispose();
            Assert.True(status == 200, $"'{auth}': {status}");
        }

        // /health stays open but says only that the server is up; the details need the key.
        var (healthStatus, health, healthResp) = await Send(http, HttpMethod.Get, "health");
        healthResp.Dispose();
        Assert.Equal(200, healthStatus);
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Single(health.EnumerateObject());
        var (_, full, fullResp) = await Send(http, HttpMethod.Get, "health", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key));
        fullResp.Dispose();
        Assert.Equal("tiny-mixtral-code", full.GetProperty("model").GetString());
    }

    [Fact]
    public async Task BadSecurityOptionsAreRefusedAtStart()
    {
        DaopServerOptions[] bad =
        [
            new() { Port = 0, ApiKey = "" }, new() { Port = 0, ApiKey = "two words" }, new() { Port = 0, ApiKey = "k\u00e9y" },
            new() { Port = 0, CorsOrigins = ["localhost:3000"] }, new() { Port = 0, CorsOrigins = ["http://localhost:3000/app"] },
            new() { Port = 0, CorsOrigins = ["file:///x"] }, new() { Port = 0, AllowedHosts = [""] }, new() { Port = 0, AllowedHosts = ["http://x/"] },
            new() { Port = 0, MaxMessages = 0 }, new() { Port = 0, RequestBodyTimeout = TimeSpan.Zero }, new() { Port = 0, Host = "example.com" },
        ];
        foreach (var o in bad)
        {
            Assert.Throws<ArgumentException>(o.Validate);
            await Assert.ThrowsAsync<ArgumentException>(() => DaopServer.StartAsync(f.Model, o));
        }
    }

    [Theory]
    [InlineData("127.0.0.1", false, false)]
    [InlineData("::1", false, false)]
    [InlineData("localhost", false, false)]
    [InlineData("0.0.0.0", false, true)]
    [InlineData("::", false, true)]
    [InlineData("192.168.1.20", false, true)]
    [InlineData("0.0.0.0", true, false)]
    public void ListeningBeyondThisMachineWithoutAKeyIsWarnedAbout(string host, bool key, bool warned)
    {
        var o = new DaopServerOptions { Host = host, ApiKey = key ? Key : null };
        Assert.Equal(warned, o.SecurityWarnings().Count > 0);
        Assert.Equal(host is not ("127.0.0.1" or "::1" or "localhost"), o.IsExposed);
        Assert.NotEmpty(new DaopServerOptions { CorsOrigins = ["*"] }.SecurityWarnings());
    }

    [Fact]
    public async Task SlowClientsAreCutOff()
    {
        await using var server = await DaopServer.StartAsync(f.Model, new DaopServerOptions
        {
            Port = 0, RequestHeadersTimeout = TimeSpan.FromSeconds(1), RequestBodyTimeout = TimeSpan.FromSeconds(1),
        });
        var t0 = DateTime.UtcNow;
        // Headers that never end (slowloris): the connection is closed.
        using (var socket = await Connect(server))
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /v1/models HTTP/1.1\r\nHost: {server.BaseAddress.Authority}\r\nX-a: "));
            string answer = await ReadToClose(socket, TimeSpan.FromSeconds(15));
            Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        }
        // Closed before the 15 s read gives up (Kestrel checks its timeouts on a 1 s heartbeat, which a busy CI machine delays).
        Assert.True(DateTime.UtcNow - t0 < TimeSpan.FromSeconds(14));

        // A body that trickles in: 408 in OpenAI's shape once the body timeout passes, then the connection closes.
        t0 = DateTime.UtcNow;
        using (var socket = await Connect(server))
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /v1/completions HTTP/1.1\r\nHost: {server.BaseAddress.Authority}\r\n" +
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\": \""));
            string answer = await ReadToClose(socket, TimeSpan.FromSeconds(15));
            Assert.StartsWith("HTTP/1.1 408", answer);
            string json = answer[answer.IndexOf('{', StringComparison.Ordinal)..(answer.LastIndexOf('}') + 1)]; // inside the chunked framing
            AssertClientError(JsonDocument.Parse(json).RootElement, "request_timeout");
        }
        Assert.True(DateTime.UtcNow - t0 < TimeSpan.FromSeconds(14));
    }

    [Fact]
    public async Task OversizedHeadersAre431AndTheServerGoesOn()
    {
        using (var req = new HttpRequestMessage(HttpMethod.Get, "v1/models"))
        {
            req.Headers.TryAddWithoutValidation("X-Big", new string('a', 40 * 1024));
            using var resp = await f.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, resp.StatusCode);
        }
        using (var req = new HttpRequestMessage(HttpMethod.Get, "v1/models"))
        {
            for (int i = 0; i < 150; i++) req.Headers.TryAddWithoutValidation($"X-H{i}", "1");
            using var resp = await f.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, resp.StatusCode);
        }
        using var ok = await f.Http.GetAsync("v1/models");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    static async Task<Socket> Connect(DaopServer server)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        return socket;
    }

    // Everything the server sends until it closes the connection (fails if it is still open after the timeout).
    static async Task<string> ReadToClose(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var received = new StringBuilder();
        var buffer = new byte[4096];
        while (true)
        {
            int n;
            try { n = await socket.ReceiveAsync(buffer, cts.Token); }
            catch (SocketException) { break; } // reset
            catch (OperationCanceledException) { Assert.Fail($"the server kept the connection open: {received}"); throw; }
            if (n == 0) break;
            received.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return received.ToString();
    }

    [Fact]
    public async Task ABindFailureNamesTheAddress()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var e = await Assert.ThrowsAsync<IOException>(() => DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = port }));
        Assert.Contains($"127.0.0.1:{port}", e.Message);
        // An address this machine does not have (TEST-NET-1).
        e = await Assert.ThrowsAsync<IOException>(() => DaopServer.StartAsync(f.Model, new DaopServerOptions { Host = "192.0.2.1", Port = 0 }));
        Assert.Contains("192.0.2.1:0", e.Message);
    }
}
