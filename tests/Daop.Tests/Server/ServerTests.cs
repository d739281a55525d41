using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Api;
using Daop.Engine.Load.Chat;
using Daop.Server;

namespace Daop.Tests.Server;

/// <summary>The embedded model behind a real Kestrel server on 127.0.0.1 (a free port), shared by the tests of one class.</summary>
public class ServerFixture : IAsyncLifetime
{
    public DaopModel Model { get; private set; } = null!;
    public DaopServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>The model folder served (made here when a subclass prepares one).</summary>
    protected virtual string ModelDir() => TestPaths.DefaultModel;

    public virtual async Task InitializeAsync()
    {
        Model = DaopModel.Load(ModelDir());
        Server = await DaopServer.StartAsync(Model, new DaopServerOptions { Port = 0, Log = Log.Enqueue, MaxTokensLimit = 1024 });
        Http = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public virtual async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
    }
}

/// <summary>
/// The OpenAI-compatible server against a real HttpClient: greedy answers equal the library API's, streams carry only
/// their own tokens, every client mistake is a 4xx in OpenAI's error shape, and a client that hangs up mid-stream
/// cancels its generation and leaves the server healthy.
/// </summary>
public sealed class ServerTests(ServerFixture f) : IClassFixture<ServerFixture>
{
    static readonly GenerationSettings Greedy = new() { Temperature = 0 };

    static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    static string ChatBody(string user, int maxTokens, bool stream) => new JsonObject
    {
        ["model"] = "tiny-mixtral-code",
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }),
        ["max_tokens"] = maxTokens,
        ["temperature"] = 0,
        ["stream"] = stream,
    }.ToJsonString();

    static string CompletionBody(string prompt, int maxTokens, bool stream) => new JsonObject
    {
        ["prompt"] = prompt,
        ["max_tokens"] = maxTokens,
        ["temperature"] = 0,
        ["stream"] = stream,
    }.ToJsonString();

    async Task<string> ExpectedChat(string user, int maxTokens) =>
        await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", user)], Greedy with { MaxTokens = maxTokens }));

    async Task<string> ExpectedCompletion(string prompt, int maxTokens) =>
        await Pieces.Join(f.Model.GenerateAsync(prompt, Greedy with { MaxTokens = maxTokens }));

    /// <summary>POSTs and returns (status, parsed JSON body).</summary>
    async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, HttpContent content)
    {
        using var resp = await f.Http.PostAsync(path, content);
        string text = await resp.Content.ReadAsStringAsync();
        Assert.StartsWith("application/json", resp.Content.Headers.ContentType?.ToString());
        return (resp.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>POSTs a streaming request and returns the data payloads of its events (ending with [DONE]).</summary>
    async Task<List<string>> PostStream(string path, string body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(body) };
        using var resp = await f.Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        string? pending = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal)) pending = line[6..];
            else if (line.Length == 0 && pending != null)
            {
                events.Add(pending);
                pending = null;
            }
            else Assert.Fail($"unexpected SSE line: {line}");
        }
        Assert.Equal("[DONE]", events[^1]);
        return events;
    }

    static (string Text, string? Finish) StreamText(List<string> events, bool chat)
    {
        var sb = new StringBuilder();
        string? finish = null;
        foreach (string e in events.SkipLast(1))
        {
            var root = JsonDocument.Parse(e).RootElement;
            Assert.Equal(chat ? "chat.completion.chunk" : "text_completion", root.GetProperty("object").GetString());
            foreach (var c in root.GetProperty("choices").EnumerateArray())
            {
                if (chat)
                {
                    if (c.GetProperty("delta").TryGetProperty("content", out var t)) sb.Append(t.GetString());
                }
                else sb.Append(c.GetProperty("text").GetString());
                if (c.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finish = c.GetProperty("finish_reason").GetString();
            }
        }
        return (sb.ToString(), finish);
    }

    static int CountOf(string s, string what)
    {
        int n = 0;
        for (int i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    static void AssertOpenAiError(JsonElement body, string? param = null)
    {
        var error = body.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.NotEmpty(error.GetProperty("message").GetString()!);
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("param", out var p));
        Assert.True(error.TryGetProperty("code", out _));
        if (param != null) Assert.Equal(param, p.GetString());
    }

    [Fact]
    public async Task HealthAndModels()
    {
        var health = JsonDocument.Parse(await f.Http.GetStringAsync("health")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        var models = JsonDocument.Parse(await f.Http.GetStringAsync("v1/models")).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        var m = Assert.Single(models.GetProperty("data").EnumerateArray());
        Assert.Equal("tiny-mixtral-code", m.GetProperty("id").GetString());
        Assert.Equal("model", m.GetProperty("object").GetString());
        var one = JsonDocument.Parse(await f.Http.GetStringAsync("v1/models/tiny-mixtral-code")).RootElement;
        Assert.Equal("tiny-mixtral-code", one.GetProperty("id").GetString());
        using var missing = await f.Http.GetAsync("v1/models/gpt-4");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task ChatCompletionEqualsTheLibraryAnswer()
    {
        var (status, body) = await Post("v1/chat/completions", Json(ChatBody("Write a function that adds two numbers", 24, stream: false)));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(await ExpectedChat("Write a function that adds two numbers", 24), choice.GetProperty("message").GetProperty("content").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(f.Model.ChatTokens([new ChatMessage("user", "Write a function that adds two numbers")]).Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
        Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
    }

    [Fact]
    public async Task StreamedChatEqualsTheLibraryAnswer()
    {
        var events = await PostStream("v1/chat/completions", ChatBody("Sort a list of tuples", 30, stream: true));
        var first = JsonDocument.Parse(events[0]).RootElement.GetProperty("choices")[0].GetProperty("delta");
        Assert.Equal("assistant", first.GetProperty("role").GetString());
        var (text, finish) = StreamText(events, chat: true);
        Assert.Equal(await ExpectedChat("Sort a list of tuples", 30), text);
        Assert.NotNull(finish);
    }

    [Fact]
    public async Task CompletionsStreamedOrNotEqualTheLibraryAnswer()
    {
        string expected = await ExpectedCompletion("def fibonacci(n):", 32);
        var (status, body) = await Post("v1/completions", Json(CompletionBody("def fibonacci(n):", 32, stream: false)));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.Equal(expected, body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(32, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var events = await PostStream("v1/completions", CompletionBody("def fibonacci(n):", 32, stream: true));
        var (text, finish) = StreamText(events, chat: false);
        Assert.Equal(expected, text);
        Assert.Equal("length", finish);
        Assert.True(events.Count > 5);
    }

    [Fact]
    public async Task StopAndUsageOptionsWork()
    {
        string full = await ExpectedCompletion("def fibonacci(n):", 40);
        string stop = full.Substring(full.Length / 2, 3);
        var body = new JsonObject { ["prompt"] = "def fibonacci(n):", ["max_tokens"] = 40, ["temperature"] = 0, ["stop"] = stop }.ToJsonString();
        var (status, json) = await Post("v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("stop", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        var streamBody = new JsonObject
        {
            ["prompt"] = "import os\n", ["max_tokens"] = 8, ["temperature"] = 0, ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        }.ToJsonString();
        var events = await PostStream("v1/completions", streamBody);
        var usage = JsonDocument.Parse(events[^2]).RootElement;
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        Assert.Equal(8, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task ConcurrentClientsEachGetOnlyTheirOwnTokens()
    {
        string[] prompts = ["import os\n", "class Stack:", "def read_json(path):", "for i in range(10):", "# sort tuples\n", "try:\n", "def main():", "x = ["];
        var expected = new List<string>();
        for (int i = 0; i < prompts.Length; i++)
            expected.Add(i % 2 == 0 ? await ExpectedCompletion(prompts[i], 24) : await ExpectedChat(prompts[i], 24));

        var results = await Task.WhenAll(Enumerable.Range(0, prompts.Length).Select(i => Task.Run(async () =>
        {
            bool chat = i % 2 == 1, stream = i % 4 < 2;
            string path = chat ? "v1/chat/completions" : "v1/completions";
            string body = chat ? ChatBody(prompts[i], 24, stream) : CompletionBody(prompts[i], 24, stream);
            if (stream) return StreamText(await PostStream(path, body), chat).Text;
            var (status, json) = await Post(path, Json(body));
            Assert.Equal(HttpStatusCode.OK, status);
            var c = json.GetProperty("choices")[0];
            return chat ? c.GetProperty("message").GetProperty("content").GetString()! : c.GetProperty("text").GetString()!;
        })));
        Assert.Equal(expected, results);
    }

    /// <summary>
    /// <c>n</c> choices are n generations: choice i is what a one-choice request with seed + i gives, whole or streamed
    /// (chunks tagged with their index, each choice with its own finish chunk); usage counts the prompt once and every
    /// choice's tokens.
    /// </summary>
    [Fact]
    public async Task NChoicesAreSeparateGenerationsWithSuccessiveSeeds()
    {
        string Body(int n, int seed, bool stream) => new JsonObject
        {
            ["prompt"] = "def fibonacci(n):", ["max_tokens"] = 12, ["temperature"] = 1.0, ["seed"] = seed, ["n"] = n, ["stream"] = stream,
        }.ToJsonString();
        var (status, json) = await Post("v1/completions", Json(Body(3, 5, false)));
        Assert.Equal(HttpStatusCode.OK, status);
        var choices = json.GetProperty("choices");
        Assert.Equal(3, choices.GetArrayLength());
        int completion = 0;
        var texts = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(i, choices[i].GetProperty("index").GetInt32());
            var (_, one) = await Post("v1/completions", Json(Body(1, 5 + i, false)));
            string text = choices[i].GetProperty("text").GetString()!;
            Assert.Equal(one.GetProperty("choices")[0].GetProperty("text").GetString(), text);
            completion += one.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            Assert.Equal(json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), one.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
            texts.Add(text);
        }
        Assert.True(texts.Distinct().Count() > 1, "sampled choices with different seeds should differ");
        Assert.Equal(completion, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var events = await PostStream("v1/completions", Body(3, 5, true));
        var streamed = new StringBuilder[3];
        var finishes = new int[3];
        for (int i = 0; i < 3; i++) streamed[i] = new StringBuilder();
        foreach (string e in events.SkipLast(1))
            foreach (var c in JsonDocument.Parse(e).RootElement.GetProperty("choices").EnumerateArray())
            {
                int i = c.GetProperty("index").GetInt32();
                streamed[i].Append(c.GetProperty("text").GetString());
                if (c.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finishes[i]++;
            }
        Assert.Equal(texts, streamed.Select(b => b.ToString()));
        Assert.Equal([1, 1, 1], finishes);
    }

    /// <summary>
    /// Log-probabilities: greedy chat tokens are their position's most likely token (logprob = top_logprobs[0]'s, ≤ 0,
    /// alternatives best first), one entry per generated token, whole or streamed; a completion's tokens spell its text
    /// at their text offsets.
    /// </summary>
    [Fact]
    public async Task LogprobsDescribeEachGeneratedToken()
    {
        string chat = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Sort a list" }),
            ["max_tokens"] = 12, ["temperature"] = 0, ["logprobs"] = true, ["top_logprobs"] = 3,
        }.ToJsonString();
        var (status, json) = await Post("v1/chat/completions", Json(chat));
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        var content = choice.GetProperty("logprobs").GetProperty("content");
        Assert.Equal(json.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), content.GetArrayLength());
        var spelled = new StringBuilder();
        foreach (var t in content.EnumerateArray())
        {
            var top = t.GetProperty("top_logprobs");
            Assert.Equal(3, top.GetArrayLength());
            float lp = t.GetProperty("logprob").GetSingle();
            Assert.True(lp <= 0);
            Assert.Equal(top[0].GetProperty("token").GetString(), t.GetProperty("token").GetString());
            Assert.Equal(top[0].GetProperty("logprob").GetSingle(), lp);
            Assert.True(top[0].GetProperty("logprob").GetSingle() >= top[1].GetProperty("logprob").GetSingle());
            Assert.True(top[1].GetProperty("logprob").GetSingle() >= top[2].GetProperty("logprob").GetSingle());
            Assert.Equal(Encoding.UTF8.GetBytes(t.GetProperty("token").GetString()!), t.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()));
            spelled.Append(t.GetProperty("token").GetString());
        }
        Assert.Equal(choice.GetProperty("message").GetProperty("content").GetString(), spelled.ToString());

        var events = await PostStream("v1/chat/completions", chat.Replace("\"top_logprobs\":3", "\"top_logprobs\":3,\"stream\":true"));
        int streamed = events.SkipLast(1).Sum(e => JsonDocument.Parse(e).RootElement.GetProperty("choices") is { } c && c.GetArrayLength() > 0 &&
            c[0].GetProperty("logprobs") is { ValueKind: JsonValueKind.Object } l ? l.GetProperty("content").GetArrayLength() : 0);
        Assert.Equal(content.GetArrayLength(), streamed);

        var (_, completion) = await Post("v1/completions", Json("""{"prompt": "def fibonacci(n):", "max_tokens": 10, "temperature": 0, "logprobs": 2}"""));
        var c0 = completion.GetProperty("choices")[0];
        var lps = c0.GetProperty("logprobs");
        var tokens = lps.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.Equal(10, tokens.Count);
        Assert.Equal(c0.GetProperty("text").GetString(), string.Concat(tokens));
        var offsets = lps.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToList();
        for (int i = 0; i < tokens.Count; i++) Assert.Equal(string.Concat(tokens.Take(i)).Length, offsets[i]);
        Assert.All(lps.GetProperty("top_logprobs").EnumerateArray(), t => Assert.Equal(2, t.EnumerateObject().Count()));
        Assert.Equal(JsonValueKind.Null, (await Post("v1/completions", Json("""{"prompt": "x", "max_tokens": 2}"""))).Body.GetProperty("choices")[0].GetProperty("logprobs").ValueKind);
    }

    public static TheoryData<string, string, int, string?> BadRequests() => new()
    {
        { "v1/chat/completions", "{\"messages\": [", 400, null },
        { "v1/chat/completions", "", 400, null },
        { "v1/chat/completions", "[1, 2]", 400, null },
        { "v1/chat/completions", "{}", 400, "messages" },
        { "v1/chat/completions", "{\"messages\": \"hi\"}", 400, "messages" },
        { "v1/chat/completions", "{\"messages\": []}", 400, "messages" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\"}]}", 400, "messages[0].content" },
        { "v1/chat/completions", "{\"messages\": [{\"content\": \"hi\"}]}", 400, "messages[0].role" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", 400, "messages[0].role" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 42}]}", 400, "messages[0].content" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", 400, "messages[0].content[0].type" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": \"ten\"}", 400, "max_tokens" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 0}", 400, "max_tokens" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 5000}", 400, "max_tokens" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 1e20}", 400, "max_tokens" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}", 400, "temperature" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": 7}", 400, "temperature" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_p\": 0}", 400, "top_p" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stream\": \"yes\"}", 400, "stream" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": 17}", 400, "n" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": 0}", 400, "n" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stop\": [1]}", 400, "stop" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"seed\": 1.5}", 400, "seed" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"model\": 7}", 400, "model" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stream_options\": 1}", 400, "stream_options" },
        { "v1/completions", "{\"max_tokens\": 5}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": 5}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": [1, -2]}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": [99999]}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": \"\", \"max_tokens\": 4}", 400, "prompt" },
        { "v1/completions", "{\"prompt\": \"x\", \"echo\": 1}", 400, "echo" },
        { "v1/completions", "{\"prompt\": \"x\", \"suffix\": \"y\"}", 400, "suffix" },
        { "v1/completions", "{\"prompt\": \"x\", \"logprobs\": 6}", 400, "logprobs" },
        { "v1/completions", "{\"prompt\": \"x\", \"logprobs\": true}", 400, "logprobs" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 2}", 400, "top_logprobs" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": true, \"top_logprobs\": 21}", 400, "top_logprobs" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": 2}", 400, "logprobs" },
        { "v1/completions", "{\"prompt\": \"x\", \"frequency_penalty\": 2.5}", 400, "frequency_penalty" },
        { "v1/completions", "{\"prompt\": \"x\", \"presence_penalty\": \"high\"}", 400, "presence_penalty" },
        { "v1/completions", "{\"prompt\": \"x\", \"repetition_penalty\": 0}", 400, "repetition_penalty" },
        { "v1/completions", "{\"prompt\": \"x\", \"min_p\": 1.5}", 400, "min_p" },
        { "v1/embeddings", "{}", 400, "input" },
        { "v1/embeddings", "{\"input\": [1, 2]}", 400, "input" },
        { "v1/embeddings", "{\"input\": \"\"}", 400, "input" },
        { "v1/embeddings", "{\"input\": \"x\", \"encoding_format\": \"int8\"}", 400, "encoding_format" },
        { "v1/embeddings", "{\"input\": \"x\", \"dimensions\": 3}", 400, "dimensions" },
        { "tokenize", "{}", 400, "prompt" },
        { "tokenize", "{\"content\": 5}", 400, "content" },
        { "detokenize", "{\"tokens\": [1, -1]}", 400, "tokens" },
        { "detokenize", "{\"tokens\": [99999]}", 400, "tokens" },
        { "detokenize", "{\"tokens\": \"1 2\"}", 400, "tokens" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}", 400, "tools" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tool_choice\": \"auto\"}", 400, "tool_choice" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tool_choice\": \"required\"}", 400, "tool_choice" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": {\"type\": \"function\", \"function\": {\"name\": \"f\"}}}", 400, "tools" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"retrieval\"}]}", 400, "tools[0].type" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\"}]}", 400, "tools[0].function" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"two words\"}}]}", 400, "tools[0].function.name" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}, {\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}", 400, "tools[1].function.name" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": \"x\"}}]}", 400, "tools[0].function.parameters" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": \"sometimes\"}", 400, "tool_choice" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"g\"}}}", 400, "tool_choice.function.name" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": \"required\", \"response_format\": {\"type\": \"json_object\"}}", 400, "tool_choice" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": {}}]}", 400, "messages[0].tool_calls" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": 5}}]}]}", 400, "messages[0].tool_calls[0].function.arguments" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\", \"tool_call_id\": 7}]}", 400, "messages[0].tool_call_id" },
        { "v1/completions", "{\"prompt\": \"x\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}", 400, "tools" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {}}}", 400, "response_format.json_schema.schema" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"json_schema\"}}", 400, "response_format.json_schema" },
        { "v1/completions", "{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"schema\": {\"type\": \"string\", \"pattern\": \"a+\"}}}}", 400, "response_format.json_schema.schema" },
        { "v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"yaml\"}}", 400, "response_format.type" },
        { "v1/completions", "{\"prompt\": \"x\", \"response_format\": \"json_object\"}", 400, "response_format" },
    };

    /// <summary>
    /// response_format json_object: the completion is always a prefix of one JSON object (the embedded code model would
    /// not write one by itself from this prompt); where it stops rather than runs out of tokens, the object is complete
    /// and parses. Greedy and sampled.
    /// </summary>
    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.9, 3)]
    [InlineData(0.9, 4)]
    public async Task JsonObjectOutputIsAnObjectOrItsPrefix(double temperature, int seed)
    {
        var body = new JsonObject
        {
            ["prompt"] = "def fibonacci(n):", ["max_tokens"] = 200, ["temperature"] = temperature, ["seed"] = seed,
            ["response_format"] = new JsonObject { ["type"] = "json_object" },
        }.ToJsonString();
        var (code, json) = await Post("v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, code);
        var choice = json.GetProperty("choices")[0];
        string text = choice.GetProperty("text").GetString()!, finish = choice.GetProperty("finish_reason").GetString()!;
        var prefix = new Daop.Engine.Generate.JsonPrefix();
        foreach (char c in text) Assert.True(prefix.Feed(c), text);
        Assert.StartsWith("{", text.TrimStart());
        Assert.True((finish == "stop") == prefix.IsComplete, $"{finish}: {text}");
        if (finish == "stop") Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
        else Assert.Equal("length", finish);
    }

    /// <summary>
    /// response_format json_schema: the completion is always a prefix of a value the schema accepts; where it stops
    /// rather than runs out of tokens, it is whole and has the schema's required keys and types.
    /// </summary>
    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(1.0, 2)]
    [InlineData(1.0, 3)]
    public async Task JsonSchemaOutputIsAValueOfTheSchemaOrItsPrefix(double temperature, int seed)
    {
        const string schema = """{"type": "object", "properties": {"name": {"type": "string"}, "lines": {"type": "integer"}, "tested": {"type": "boolean"}}, "required": ["name", "lines", "tested"], "additionalProperties": false}""";
        var body = new JsonObject
        {
            ["prompt"] = "def fibonacci(n):", ["max_tokens"] = 200, ["temperature"] = temperature, ["seed"] = seed,
            ["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "f", ["schema"] = JsonNode.Parse(schema) } },
        }.ToJsonString();
        var (code, json) = await Post("v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, code);
        var choice = json.GetProperty("choices")[0];
        string text = choice.GetProperty("text").GetString()!, finish = choice.GetProperty("finish_reason").GetString()!;
        var g = Daop.Engine.Generate.JsonSchemaGrammar.Compile(schema);
        var prefix = new Daop.Engine.Generate.JsonSchemaPrefix(g);
        foreach (char c in text) Assert.True(prefix.Feed(g, c), text);
        Assert.True((finish == "stop") == prefix.IsComplete, $"{finish}: {text}");
        if (finish != "stop") return;
        var o = JsonDocument.Parse(text).RootElement;
        Assert.Equal(["lines", "name", "tested"], o.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(JsonValueKind.String, o.GetProperty("name").ValueKind);
        Assert.True(o.GetProperty("lines").TryGetInt64(out _));
        Assert.True(o.GetProperty("tested").ValueKind is JsonValueKind.True or JsonValueKind.False);
    }

    /// <summary>/v1/embeddings: one vector per input in order, equal to the library's, as floats or base64 float32.</summary>
    [Fact]
    public async Task EmbeddingsEqualTheLibrarys()
    {
        string[] inputs = ["def add(a, b):", "import os"];
        var body = new JsonObject { ["input"] = new JsonArray(inputs.Select(x => (JsonNode)x).ToArray()), ["model"] = "any" }.ToJsonString();
        var (code, json) = await Post("v1/embeddings", Json(body));
        Assert.Equal(HttpStatusCode.OK, code);
        var data = json.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        int tokens = 0;
        for (int i = 0; i < 2; i++)
        {
            var (want, n) = await f.Model.EmbedAsync(inputs[i]);
            tokens += n;
            Assert.Equal(i, data[i].GetProperty("index").GetInt32());
            Assert.Equal(want, data[i].GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray());
        }
        Assert.Equal(tokens, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        (code, json) = await Post("v1/embeddings", Json("{\"input\": \"import os\", \"encoding_format\": \"base64\"}"));
        var bytes = Convert.FromBase64String(json.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        Assert.Equal((await f.Model.EmbedAsync("import os")).Embedding, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    /// <summary>/metrics: Prometheus text whose counters move by exactly what a request reported in its usage.</summary>
    [Fact]
    public async Task MetricsCountWhatRequestsUsed()
    {
        var before = await Scrape(f.Http);
        Assert.DoesNotContain("daop_expert_activations_total", before.Keys); // no offloaded experts here
        var (code, json) = await Post("v1/completions", Json(CompletionBody("def add(a, b):", 6, stream: false)));
        Assert.Equal(HttpStatusCode.OK, code);
        var after = await Scrape(f.Http);
        var usage = json.GetProperty("usage");
        Assert.Equal(1, after["daop_requests_total"] - before["daop_requests_total"]);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), after["daop_prompt_tokens_total"] - before["daop_prompt_tokens_total"]);
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), after["daop_generated_tokens_total"] - before["daop_generated_tokens_total"]);
        Assert.True(after["daop_prefill_seconds_total"] > before["daop_prefill_seconds_total"]);
        Assert.Equal(0, after["daop_requests_in_flight"]);
    }

    static async Task<Dictionary<string, double>> Scrape(HttpClient http)
    {
        using var resp = await http.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("text/plain", resp.Content.Headers.ContentType?.MediaType);
        var values = new Dictionary<string, double>();
        foreach (var line in (await resp.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#')) { Assert.Matches(@"^# (HELP|TYPE) daop_[a-z_]+ ", line); continue; }
            var parts = line.Split(' ');
            values[parts[0]] = double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        return values;
    }

    /// <summary>With offloaded experts, /metrics adds where the routed pairs ran and what was copied, as the scheduler counted.</summary>
    [Fact]
    public async Task MetricsCountOffloadedExperts()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions
        {
            Engine = new Engine.Model.ModelOptions
            {
                Experts = (m, _) => Engine.Schedule.CpuStandInScheduler.FromRatio(m, new Engine.Placement.LruPolicy(prefetch: false), 0.25),
            },
        });
        await using var server = await DaopServer.StartAsync(model, new DaopServerOptions { Port = 0 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var resp = await http.PostAsync("v1/completions", Json(CompletionBody("def add(a, b):", 6, stream: false)));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var m = await Scrape(http);
        var counts = model.ExpertCounts!;
        Assert.True(counts.Activations > 0);
        Assert.Equal(counts.Activations, m["daop_expert_activations_total"]);
        Assert.Equal(counts.Hits, m["daop_expert_hits_total"]);
        Assert.Equal(m["daop_expert_activations_total"], m["daop_expert_gpu_runs_total"] + m["daop_expert_cpu_runs_total"]);
        Assert.True(m["daop_expert_transfers_total"] > 0); // lru-on-demand at a quarter of the experts copies on misses
        Assert.Equal(counts.TransferBytes, m["daop_expert_transfer_bytes_total"]);
        Assert.Null(f.Model.ExpertCounts);
    }

    /// <summary>/tokenize gives the library's ids (with and without special tokens), /detokenize the text back.</summary>
    [Fact]
    public async Task TokenizeAndDetokenizeRoundTrip()
    {
        const string text = "def add(a, b):\n    return a + b";
        var (code, json) = await Post("tokenize", Json(new JsonObject { ["content"] = text, ["add_special"] = false }.ToJsonString()));
        Assert.Equal(HttpStatusCode.OK, code);
        var ids = json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(f.Model.Tokenize(text, addSpecialTokens: false), ids);
        Assert.Equal(ids.Length, json.GetProperty("count").GetInt32());
        Assert.Equal(f.Model.ContextLength, json.GetProperty("max_model_len").GetInt32());
        (code, json) = await Post("tokenize", Json(new JsonObject { ["prompt"] = text }.ToJsonString()));
        Assert.Equal(f.Model.Tokenize(text, addSpecialTokens: true), json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        (code, json) = await Post("detokenize", Json(new JsonObject { ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) }.ToJsonString()));
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(text, json.GetProperty("content").GetString());
        Assert.Equal(text, json.GetProperty("prompt").GetString());
    }

    /// <summary>
    /// Penalties and min-p are applied, not ignored: greedy with a repetition penalty equals the library API with the
    /// same settings and differs from plain greedy on this repetitive model; empty tools and a text response format are
    /// accepted.
    /// </summary>
    [Fact]
    public async Task PenaltiesAreAppliedAsTheLibraryAppliesThem()
    {
        const string prompt = "def fib(n):";
        var settings = Greedy with { MaxTokens = 24, RepetitionPenalty = 1.8f, FrequencyPenalty = 0.5f, PresencePenalty = 0.3f, MinP = 0.05f };
        string want = await Pieces.Join(f.Model.GenerateAsync(prompt, settings));
        string plain = await ExpectedCompletion(prompt, 24);
        Assert.NotEqual(plain, want);
        var body = new JsonObject
        {
            ["prompt"] = prompt, ["max_tokens"] = 24, ["temperature"] = 0, ["repetition_penalty"] = 1.8,
            ["frequency_penalty"] = 0.5, ["presence_penalty"] = 0.3, ["min_p"] = 0.05,
            ["tools"] = new JsonArray(), ["response_format"] = new JsonObject { ["type"] = "text" },
        }.ToJsonString();
        var (code, json) = await Post("v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(want, json.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task ClientMistakesAre4xxInOpenAiShape(string path, string body, int status, string? param)
    {
        var (code, json) = await Post(path, Json(body));
        Assert.Equal(status, (int)code);
        AssertOpenAiError(json, param);
    }

    [Fact]
    public async Task PromptLongerThanTheContextIs400()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("word", f.Model.ContextLength + 10));
        var (code, json) = await Post("v1/completions", Json(CompletionBody(prompt, 4, stream: false)));
        Assert.Equal(HttpStatusCode.BadRequest, code);
        AssertOpenAiError(json, "prompt");
        Assert.Equal("context_length_exceeded", json.GetProperty("error").GetProperty("code").GetString());
        (code, json) = await Post("v1/chat/completions", Json(ChatBody(prompt, 4, stream: true)));
        Assert.Equal(HttpStatusCode.BadRequest, code);
        AssertOpenAiError(json, "messages");
    }

    [Fact]
    public async Task OversizedBodyIs413()
    {
        string big = CompletionBody(new string('a', 1_100_000), 4, stream: false);
        var (code, json) = await Post("v1/completions", Json(big));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, code);
        AssertOpenAiError(json);
        // Without a Content-Length (chunked), the limit applies while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = chunked };
        req.Headers.TransferEncodingChunked = true;
        using var resp = await f.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, resp.StatusCode);
        AssertOpenAiError(JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement);
    }

    [Fact]
    public async Task UnknownRoutesAndMethodsAre4xxInOpenAiShape()
    {
        using var notFound = await f.Http.GetAsync("v1/engines");
        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        AssertOpenAiError(JsonDocument.Parse(await notFound.Content.ReadAsStringAsync()).RootElement);
        using var wrongMethod = await f.Http.GetAsync("v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        AssertOpenAiError(JsonDocument.Parse(await wrongMethod.Content.ReadAsStringAsync()).RootElement);
    }

    [Fact]
    public async Task ClientThatDisconnectsMidStreamCancelsItsGeneration()
    {
        // A raw socket, so the hang-up is real (HttpClient would drain the rest of the response to reuse the connection).
        using (var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
        {
            await socket.ConnectAsync(f.Server.BaseAddress.Host, f.Server.BaseAddress.Port);
            byte[] body = Encoding.UTF8.GetBytes(CompletionBody("import os\n", 1000, stream: true));
            string head = $"POST /v1/completions HTTP/1.1\r\nHost: {f.Server.BaseAddress.Authority}\r\nContent-Type: application/json\r\n" +
                $"Content-Length: {body.Length}\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(head).Concat(body).ToArray());
            var received = new StringBuilder();
            var buffer = new byte[4096];
            while (CountOf(received.ToString(), "data: ") < 3)
            {
                int n = await socket.ReceiveAsync(buffer);
                Assert.True(n > 0, $"the server closed the stream early: {received}");
                received.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }
            Assert.StartsWith("HTTP/1.1 200", received.ToString());
            socket.LingerState = new System.Net.Sockets.LingerOption(true, 0); // close with a reset, like a killed client
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonElement health;
        do
        {
            await Task.Delay(20);
            health = JsonDocument.Parse(await f.Http.GetStringAsync("health")).RootElement;
        } while ((health.GetProperty("in_flight").GetInt32() > 0 || health.GetProperty("busy").GetBoolean() ||
                  !f.Log.Any(l => l.Contains("(client disconnected)", StringComparison.Ordinal))) && DateTime.UtcNow < deadline);
        Assert.Equal(0, health.GetProperty("in_flight").GetInt32());
        string line2 = f.Log.Last(l => l.Contains("(client disconnected)", StringComparison.Ordinal));
        int generated = int.Parse(line2.Split(" tok")[0].Split('+')[^1]);
        Assert.True(generated < 1000, $"the generation ran on after the client left: {line2}");

        // The next request is served normally.
        var (status, json) = await Post("v1/completions", Json(CompletionBody("def fibonacci(n):", 16, stream: false)));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(await ExpectedCompletion("def fibonacci(n):", 16), json.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task AFailureMidStreamEndsTheStreamWithAnErrorEvent()
    {
        var model = DaopModel.Load(TestPaths.DefaultModel);
        await using var server = await DaopServer.StartAsync(model, new DaopServerOptions { Port = 0 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(CompletionBody("import os\n", 1000, stream: true)) };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());
        model.Dispose(); // the generation fails before its next token
        var rest = new List<string>();
        while (await reader.ReadLineAsync() is { } line) if (line.StartsWith("data: ", StringComparison.Ordinal)) rest.Add(line[6..]);
        Assert.Equal("[DONE]", rest[^1]);
        AssertOpenAiError(JsonDocument.Parse(rest[^2]).RootElement);
    }

    [Fact]
    public async Task RequestsBeyondTheQueueLimitGet429()
    {
        await using var small = await DaopServer.StartAsync(f.Model, new DaopServerOptions { Port = 0, MaxQueuedRequests = 1 });
        using var http = new HttpClient { BaseAddress = small.BaseAddress };
        using var cts = new CancellationTokenSource();
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(CompletionBody("import os\n", 1000, stream: true)) };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        using var second = await http.PostAsync("v1/completions", Json(CompletionBody("x", 4, stream: false)));
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var error = JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement;
        AssertOpenAiError(error);
        cts.Cancel();
    }
}
