using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Server;

/// <summary>
/// Chat requests that offer tools to a test server, and their replies read back the same way whole or streamed: the
/// text, the calls (name and arguments, with their ids apart, which differ from reply to reply) and the finish reason.
/// </summary>
static class ToolChat
{
    public static readonly ToolDefinition Weather = new("get_weather", "Get the weather in a city",
        "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}");
    public static readonly ToolDefinition Time = new("get_time", "The time now");

    /// <summary>A reply: its text (null when it is only calls), its calls, their ids, and why it finished.</summary>
    public sealed record Reply(string? Content, List<(string Name, string Args)> Calls, List<string> Ids, string Finish);

    /// <summary>
    /// <paramref name="tokenizerJson"/> with each of <paramref name="tokens"/>' ids given to a special token of that text:
    /// the vocabulary's token of that id and the merge that makes it are removed (ids of the last merges, whose tokens no
    /// other merge uses, so the weights fit unchanged and the rest of the vocabulary encodes as before).
    /// </summary>
    public static string WithSpecialTokens(string tokenizerJson, params (int Id, string Content)[] tokens)
    {
        var root = JsonNode.Parse(tokenizerJson)!;
        var model = root["model"]!;
        var vocab = model["vocab"]!.AsObject();
        var merges = model["merges"]!.AsArray();
        foreach (var (id, content) in tokens)
        {
            string replaced = vocab.Single(p => (int)p.Value! == id).Key;
            vocab.Remove(replaced);
            merges.Remove(merges.Single(m => string.Concat(m!.AsArray().Select(x => (string)x!)) == replaced));
            root["added_tokens"]!.AsArray().Add(new JsonObject
            {
                ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        }
        return root.ToJsonString();
    }

    public static JsonArray ToolsJson(params ToolDefinition[] tools) => new(tools.Select(t => (JsonNode)new JsonObject
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = t.Name, ["description"] = t.Description,
            ["parameters"] = t.Parameters == null ? null : JsonNode.Parse(t.Parameters),
        },
    }).ToArray());

    /// <summary>"What is the weather in Paris?" with <paramref name="tools"/> (none: the weather and the time) offered.</summary>
    public static string Body(JsonNode? toolChoice, bool stream, double temperature = 0, int seed = 1, int maxTokens = 96, params ToolDefinition[] tools) => new JsonObject
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "What is the weather in Paris?" }),
        ["tools"] = ToolsJson(tools.Length > 0 ? tools : [Weather, Time]),
        ["tool_choice"] = toolChoice,
        ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["seed"] = seed, ["stream"] = stream,
    }.ToJsonString();

    /// <summary>
    /// A request whose messages hold a call (id <c>call_1</c>, OpenAI's style) to get_weather and its <paramref name="result"/>,
    /// with get_weather offered, for 4 greedy tokens.
    /// </summary>
    public static string HistoryBody(string result) => new JsonObject
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" },
            new JsonObject
            {
                ["role"] = "assistant", ["content"] = null,
                ["tool_calls"] = new JsonArray(new JsonObject
                {
                    ["id"] = "call_1", ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\": \"Paris\"}" },
                }),
            },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = result }),
        ["tools"] = ToolsJson(Weather),
        ["max_tokens"] = 4, ["temperature"] = 0,
    }.ToJsonString();

    /// <summary>The messages of <see cref="HistoryBody"/>, typed.</summary>
    public static ChatMessage[] History(string result) =>
    [
        new("user", "Weather in Paris?"),
        new("assistant", "") { ToolCalls = [new ToolCall("call_1", "get_weather", "{\"city\": \"Paris\"}")] },
        new("tool", result) { ToolCallId = "call_1" },
    ];

    public static async Task<JsonElement> Post(HttpClient http, string body)
    {
        using var resp = await http.PostAsync("v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.StatusCode == HttpStatusCode.OK, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static async Task<List<JsonElement>> PostStream(HttpClient http, string body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var events = new List<JsonElement>();
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal) && line != "data: [DONE]") events.Add(JsonDocument.Parse(line[6..]).RootElement.Clone());
        return events;
    }

    /// <summary>A whole reply.</summary>
    public static Reply Read(JsonElement json)
    {
        var choice = json.GetProperty("choices")[0];
        var message = choice.GetProperty("message");
        var calls = message.TryGetProperty("tool_calls", out var tc) ? tc.EnumerateArray().ToList() : [];
        var content = message.GetProperty("content");
        return new(content.ValueKind == JsonValueKind.Null ? null : content.GetString(), [.. calls.Select(Call)], [.. calls.Select(Id)],
            choice.GetProperty("finish_reason").GetString()!);
    }

    /// <summary>A streamed reply: content deltas joined, tool_calls deltas (each whole, indexed in order).</summary>
    public static Reply Read(List<JsonElement> events)
    {
        var text = new StringBuilder();
        var calls = new List<JsonElement>();
        string finish = "";
        foreach (var e in events)
        {
            var choice = e.GetProperty("choices")[0];
            var delta = choice.GetProperty("delta");
            if (delta.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) text.Append(c.GetString());
            if (delta.TryGetProperty("tool_calls", out var tc))
                foreach (var call in tc.EnumerateArray())
                {
                    Assert.Equal(calls.Count, call.GetProperty("index").GetInt32());
                    calls.Add(call);
                }
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finish = choice.GetProperty("finish_reason").GetString()!;
        }
        string content = text.ToString().Trim();
        return new(content.Length == 0 && calls.Count > 0 ? null : content, [.. calls.Select(Call)], [.. calls.Select(Id)], finish);
    }

    static (string, string) Call(JsonElement c)
    {
        Assert.Equal("function", c.GetProperty("type").GetString());
        return (c.GetProperty("function").GetProperty("name").GetString()!, c.GetProperty("function").GetProperty("arguments").GetString()!);
    }

    static string Id(JsonElement c) => c.GetProperty("id").GetString()!;

    /// <summary>A forced reply: one call to an allowed function with object arguments, or (cut short by max_tokens) text that starts the call (<paramref name="head"/>).</summary>
    public static void AssertForced(Reply r, string[] allowed, string head)
    {
        if (r.Finish == "tool_calls")
        {
            Assert.Null(r.Content);
            var (name, args) = Assert.Single(r.Calls);
            Assert.Contains(name, allowed);
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(args).RootElement.ValueKind);
        }
        else
        {
            Assert.Equal("length", r.Finish);
            Assert.Empty(r.Calls);
            Assert.StartsWith(head, r.Content);
        }
    }
}
