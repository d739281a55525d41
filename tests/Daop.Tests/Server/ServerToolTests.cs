using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Server;

/// <summary>
/// The embedded model's weights and tokenizer with Qwen2.5's chat template (Hermes tool calls), behind a real server.
/// The folder links to the model's files, so nothing large is copied.
/// </summary>
public sealed class ToolServerFixture : ServerFixture
{
    string? _dir;

    /// <summary>A new temporary folder of links to the embedded model's files with Qwen2.5's template; delete it after.</summary>
    public static string MakeFolder() => LinkedFolder("qwen2.5-instruct.jinja");

    /// <summary>
    /// A new temporary folder of links to the embedded model's files, except <paramref name="ownFiles"/> (which the caller
    /// writes), with <paramref name="template"/> from the chat-template fixtures as its chat_template.jinja.
    /// </summary>
    public static string LinkedFolder(string template, params string[] ownFiles)
    {
        string dir = Directory.CreateTempSubdirectory("daop-tools-").FullName;
        foreach (var file in Directory.GetFiles(TestPaths.DefaultModel))
            if (Path.GetFileName(file) != "chat_template.jinja" && !ownFiles.Contains(Path.GetFileName(file)))
                File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(file)), file);
        File.Copy(Path.Combine(TestPaths.Root, "tests", "fixtures", "chat-templates", template), Path.Combine(dir, "chat_template.jinja"));
        return dir;
    }

    protected override string ModelDir() => _dir ??= MakeFolder();

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_dir != null) Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// Tool calls through /v1/chat/completions: forced calls ("required", a named function) come back as tool_calls whole and
/// streamed; "auto" replies are the library's text split the same way; calls and tool answers in the messages reach the
/// template as they should.
/// </summary>
public sealed class ServerToolTests(ToolServerFixture f) : IClassFixture<ToolServerFixture>
{
    static readonly ToolDefinition Weather = ToolChat.Weather;
    static readonly ToolDefinition Time = ToolChat.Time;

    static JsonArray ToolsJson(params ToolDefinition[] tools) => ToolChat.ToolsJson(tools);

    static string Body(JsonNode? toolChoice, bool stream, double temperature = 0, int seed = 1, int maxTokens = 96, params ToolDefinition[] tools) =>
        ToolChat.Body(toolChoice, stream, temperature, seed, maxTokens, tools);

    Task<JsonElement> Post(string body) => ToolChat.Post(f.Http, body);

    Task<List<JsonElement>> PostStream(string body) => ToolChat.PostStream(f.Http, body);

    // (content, [(name, arguments)], finish) of a whole reply; Hermes call ids are OpenAI's.
    static (string? Content, List<(string Name, string Args)> Calls, string Finish) Reply(JsonElement json) => Hermes(ToolChat.Read(json));

    // The same from a stream.
    static (string? Content, List<(string Name, string Args)> Calls, string Finish) Reply(List<JsonElement> events) => Hermes(ToolChat.Read(events));

    static (string? Content, List<(string Name, string Args)> Calls, string Finish) Hermes(ToolChat.Reply r)
    {
        foreach (var id in r.Ids) Assert.StartsWith("call_", id);
        return (r.Content, r.Calls, r.Finish);
    }

    // A forced reply: one call to an allowed function with object arguments, or (cut short by max_tokens) the start of one.
    static void AssertForced((string? Content, List<(string Name, string Args)> Calls, string Finish) r, string[] allowed) =>
        ToolChat.AssertForced(new(r.Content, r.Calls, [], r.Finish), allowed, "<tool_call>\n{\"name\": \"");

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.9, 2)]
    [InlineData(0.9, 3)]
    public async Task ANamedToolChoiceGivesOneCallToIt(double temperature, int seed)
    {
        var choice = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather" } };
        var whole = Reply(await Post(Body(choice, stream: false, temperature, seed, maxTokens: 200)));
        AssertForced(whole, ["get_weather"]);
        var streamed = Reply(await PostStream(Body(choice.DeepClone(), stream: true, temperature, seed, maxTokens: 200)));
        Assert.Equal(whole.Finish, streamed.Finish);
        Assert.Equal(whole.Calls, streamed.Calls); // same seed, same tokens
        if (whole.Finish != "tool_calls") Assert.Equal(whole.Content, streamed.Content);
    }

    [Fact]
    public async Task RequiredPicksOneOfTheTools()
    {
        int calls = 0;
        for (int seed = 0; seed < 4; seed++)
        {
            var r = Reply(await Post(Body("required", stream: false, temperature: 1.0, seed, maxTokens: 200)));
            AssertForced(r, ["get_weather", "get_time"]);
            calls += r.Calls.Count;
        }
        // An empty-arguments call is short: get_time alone must close within 200 tokens.
        var time = Reply(await Post(Body("required", stream: false, maxTokens: 200, tools: Time)));
        AssertForced(time, ["get_time"]);
        Assert.True(calls + time.Calls.Count > 0, "no forced call closed within 200 tokens");
    }

    [Fact]
    public async Task AutoRepliesAreTheLibrarysTextSplit()
    {
        var settings = new GenerationSettings { Temperature = 0, MaxTokens = 48 };
        string text = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "What is the weather in Paris?")], [Weather, Time], settings));
        var (content, calls) = HermesToolCalls.Parse(text);
        var whole = Reply(await Post(Body("auto", stream: false, maxTokens: 48)));
        Assert.Equal(content, whole.Content);
        Assert.Equal(calls.Select(c => c.Name), whole.Calls.Select(c => c.Name));
        Assert.Equal(calls.Count > 0, whole.Finish == "tool_calls");
        var streamed = Reply(await PostStream(Body(null, stream: true, maxTokens: 48))); // auto is the default with tools
        Assert.Equal(content, streamed.Content);
        Assert.Equal(whole.Calls.Select(c => c.Name), streamed.Calls.Select(c => c.Name));

        // tool_choice none: the tools are not offered at all, so the reply is the plain chat's.
        string plain = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "What is the weather in Paris?")], settings));
        Assert.Equal(plain, Reply(await Post(Body("none", stream: false, maxTokens: 48))).Content);
    }

    [Fact]
    public async Task CallsAndToolAnswersInTheMessagesReachTheTemplate()
    {
        var json = await Post(ToolChat.HistoryBody("{\"temp\": 20}"));
        var typed = ToolChat.History("{\"temp\": 20}");
        int[] want = f.Model.ChatTokens(typed, [Weather]);
        Assert.Contains("<tool_response>\n{\"temp\": 20}\n</tool_response>", f.Model.Tokenizer.Decode(want));
        Assert.Equal(want.Length, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }
}
