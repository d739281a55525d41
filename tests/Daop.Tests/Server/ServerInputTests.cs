using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Daop.Server;

namespace Daop.Tests.Server;

/// <summary>
/// Request bodies an outside tester sent to break the server: invalid UTF-8 and lone surrogate escapes anywhere, numbers
/// out of range, odd but valid text, too many messages, long stop sequences. Each is a 4xx in OpenAI's shape or a normal
/// answer, never a 500.
/// </summary>
public sealed class ServerInputTests(ServerFixture f) : IClassFixture<ServerFixture>
{
    const string Chat = "v1/chat/completions", Completions = "v1/completions";

    /// <summary>POSTs raw bytes as application/json; returns the status and the parsed body.</summary>
    internal static async Task<(int Status, JsonElement Body)> PostBytes(HttpClient http, string path, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var resp = await http.PostAsync(path, content);
        string text = await resp.Content.ReadAsStringAsync();
        Assert.StartsWith("application/json", resp.Content.Headers.ContentType?.ToString());
        return ((int)resp.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Asserts OpenAI's error shape, the type invalid_request_error and, when given, the code.</summary>
    internal static void AssertClientError(JsonElement body, string? code = null)
    {
        var error = body.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.True(error.TryGetProperty("param", out _));
        Assert.True(error.TryGetProperty("code", out var c));
        if (code != null) Assert.Equal(code, c.GetString());
    }

    // "X" in each template is replaced by the bad bytes.
    public static TheoryData<string, string> Places() => new()
    {
        { Chat, """{"messages": [{"role": "user", "content": "hi X there"}], "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "user", "content": [{"type": "text", "text": "X"}]}], "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "userX", "content": "hi"}], "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "stop": ["X"], "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "model": "X", "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "Xunknown": 1, "max_tokens": 2}""" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "user": "X", "max_tokens": 2}""" },
        { Completions, """{"prompt": "def X():", "max_tokens": 2}""" },
        { Completions, """{"prompt": ["X"], "max_tokens": 2}""" },
        { Completions, """{"prompt": "x", "stop": "X", "max_tokens": 2}""" },
    };

    public static TheoryData<string, string, string> InvalidUtf8() => Cross(Places(), ["FF", "C0AF", "EDA080", "E282", "F4908080", "80"]);

    public static TheoryData<string, string, string> LoneSurrogates() =>
        Cross(Places(), [@"\ud800", @"\udc00", @"\uDBFF", @"\ud800\u0041", @"a\udfff", @"\ude00\ud83d"]);

    static TheoryData<string, string, string> Cross(TheoryData<string, string> places, string[] bad)
    {
        var data = new TheoryData<string, string, string>();
        foreach (var row in places)
            foreach (string b in bad)
                data.Add((string)row[0], (string)row[1], b);
        return data;
    }

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public async Task InvalidUtf8AnywhereInTheBodyIs400(string path, string template, string hex)
    {
        int at = template.IndexOf('X');
        byte[] body = [.. Encoding.UTF8.GetBytes(template[..at]), .. Convert.FromHexString(hex), .. Encoding.UTF8.GetBytes(template[(at + 1)..])];
        var (status, json) = await PostBytes(f.Http, path, body);
        Assert.Equal(400, status);
        AssertClientError(json, "invalid_encoding");
    }

    [Theory]
    [MemberData(nameof(LoneSurrogates))]
    public async Task LoneSurrogateEscapesAre400(string path, string template, string escape)
    {
        var (status, json) = await PostBytes(f.Http, path, Encoding.UTF8.GetBytes(template.Replace("X", escape)));
        Assert.Equal(400, status);
        AssertClientError(json, "invalid_encoding");
    }

    [Fact]
    public async Task InvalidUtf8AtTheEndOfTheBodyIs400()
    {
        // A truncated sequence as the last bytes, after the JSON text.
        var (status, json) = await PostBytes(f.Http, Completions, [.. """{"prompt": "x"}"""u8, 0xE2, 0x82]);
        Assert.Equal(400, status);
        AssertClientError(json, "invalid_encoding");
    }

    // Odd but valid text: served (200), never 500.
    public static TheoryData<string> OddText() => new()
    {
        @"\u0000", "\\u0000\\u0001\\u001f", @"\ufeffBOM", @"\uffff\ufffe", @"\ud83d\ude00 emoji pair", "e\u0301\u0301\u0301", "\u202eRTL",
        "\U0010FFFF", @"\udbff\udfff", "{{ raise_exception('x') }}", "{% for %}", "<|im_start|>system\nx<|im_end|>", "<s></s>",
        new string('\u00e9', 300), "\t\r\n\u2028\u2029",
    };

    [Theory]
    [MemberData(nameof(OddText))]
    public async Task OddButValidTextIsServed(string text)
    {
        string s = JsonSerializer.Serialize(text)[1..^1].Replace(@"\\u", @"\u", StringComparison.Ordinal);
        foreach (var (path, body) in new[]
        {
            (Chat, $$"""{"messages": [{"role": "system", "content": "{{s}}"}, {"role": "user", "content": "{{s}}"}], "max_tokens": 2, "temperature": 0}"""),
            (Completions, $$"""{"prompt": "{{s}}", "max_tokens": 2, "temperature": 0, "echo": true, "stop": ["{{(s.Length > 200 ? "x" : s)}}"]}"""),
        })
        {
            var (status, json) = await PostBytes(f.Http, path, Encoding.UTF8.GetBytes(body));
            Assert.True(status == 200, $"{path} {body[..Math.Min(body.Length, 120)]}: {status} {json}");
        }
    }

    public static TheoryData<string, string, string> OutOfRange() => new()
    {
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}""", "max_tokens" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2.5}""", "max_tokens" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}""", "max_tokens" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1e400}""", "max_tokens" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 99999999999}""", "max_completion_tokens" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "temperature": -0.1}""", "temperature" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}""", "temperature" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "temperature": "NaN"}""", "temperature" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "top_p": 1.5}""", "top_p" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "top_p": -1e-300}""", "top_p" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "top_k": -1}""", "top_k" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "top_k": 1e30}""", "top_k" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "seed": 1e30}""", "seed" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "n": 0}""", "n" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}""", "stop" },
        { Chat, """{"messages": [{"role": "user", "content": "hi"}], "stop": [""]}""", "stop" },
        { Chat, $$"""{"messages": [{"role": "user", "content": "hi"}], "stop": "{{new string('x', OpenAiRequests.MaxStopLength + 1)}}"}""", "stop" },
        { Completions, """{"prompt": [1e400]}""", "prompt" },
        { Completions, """{"prompt": [1.5]}""", "prompt" },
        { Completions, """{"prompt": [2147483648]}""", "prompt" },
        { Completions, """{"prompt": [2147483647]}""", "prompt" },
        { Completions, """{"prompt": [1, "a"]}""", "prompt" },
        { Completions, """{"prompt": "x", "best_of": 2}""", "best_of" },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public async Task NumbersAndListsOutOfRangeAre400(string path, string body, string param)
    {
        var (status, json) = await PostBytes(f.Http, path, Encoding.UTF8.GetBytes(body));
        Assert.Equal(400, status);
        AssertClientError(json);
        Assert.Equal(param, json.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task ExtremeButValidSettingsAreServed()
    {
        string[] settings =
        [
            """ "top_k": 2147483647, "temperature": 2 """, """ "top_p": 1e-30, "temperature": 1 """, """ "seed": -9223372036854775808 """,
            """ "seed": 9223372036854775807, "temperature": 0.00001 """, """ "stop": ["a", "b", "c", "d"] """,
        ];
        foreach (string s in settings)
        {
            var (status, json) = await PostBytes(f.Http, Completions, Encoding.UTF8.GetBytes($$"""{"prompt": "x", "max_tokens": 2, {{s}}}"""));
            Assert.True(status == 200, $"{s}: {status} {json}");
        }
    }

    [Fact]
    public async Task TooManyMessagesIs400()
    {
        await using var server = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, MaxMessages = 8 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        string Messages(int n) => string.Join(", ", Enumerable.Range(0, n).Select(i => $$"""{"role": "{{(i % 2 == 0 ? "user" : "assistant")}}", "content": "m{{i}}"}"""));
        var (status, json) = await PostBytes(http, Chat, Encoding.UTF8.GetBytes($$"""{"messages": [{{Messages(9)}}], "max_tokens": 1}"""));
        Assert.Equal(400, status);
        AssertClientError(json, "array_above_max_length");
        (status, _) = await PostBytes(http, Chat, Encoding.UTF8.GetBytes($$"""{"messages": [{{Messages(7)}}], "max_tokens": 1}"""));
        Assert.Equal(200, status);
        // The default limit, on the shared server.
        (status, json) = await PostBytes(f.Http, Chat, Encoding.UTF8.GetBytes($$"""{"messages": [{{Messages(new DaopServerOptions().MaxMessages + 1)}}]}"""));
        Assert.Equal(400, status);
        AssertClientError(json, "array_above_max_length");
    }

    [Fact]
    public async Task DeeplyNestedJsonIs400()
    {
        string deep = new string('[', 100) + new string(']', 100);
        var (status, json) = await PostBytes(f.Http, Chat, Encoding.UTF8.GetBytes($$"""{"messages": [{"role": "user", "content": "hi"}], "x": {{deep}}}"""));
        Assert.Equal(400, status);
        AssertClientError(json, "invalid_json");
    }

    [Fact]
    public async Task OddModelIdsInTheUrlAre404()
    {
        // (Kestrel itself answers 400 to %00, before the server sees the request.)
        foreach (string id in new[] { "%ED%A0%80", "%FF", "%C0%AF", "a%2Fb", "%E2%80%AE", "%5Cud800" })
        {
            using var resp = await f.Http.GetAsync($"v1/models/{id}");
            Assert.True(resp.StatusCode == HttpStatusCode.NotFound, $"{id}: {resp.StatusCode}");
            AssertClientError(JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement);
        }
    }
}
