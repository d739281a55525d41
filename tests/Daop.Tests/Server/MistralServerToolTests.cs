using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Server;

/// <summary>
/// The embedded model's weights with Mistral-7B-Instruct-v0.3's chat template and a tokenizer that has Mistral's
/// <c>[TOOL_CALLS]</c> control token, behind a real server. The token takes the id of the vocabulary's last merge (a
/// rare one, ”, which then splits in two), so the weights fit unchanged; the model was not trained on it, so the test
/// covers the way calls are forced, decoded and parsed, not what a Mistral model would answer.
/// </summary>
public sealed class MistralToolServerFixture : ServerFixture
{
    /// <summary>The id <c>[TOOL_CALLS]</c> gets.</summary>
    public const int ToolCallsId = 4095;

    string? _dir;

    /// <summary>A new temporary folder: links to the embedded model's files, its tokenizer with [TOOL_CALLS], Mistral's template.</summary>
    public static string MakeFolder()
    {
        string dir = ToolServerFixture.LinkedFolder("mistral-7b-instruct-v0.3.jinja", "tokenizer.json");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), WithToolCallsToken(File.ReadAllText(Path.Combine(TestPaths.DefaultModel, "tokenizer.json"))));
        return dir;
    }

    // The vocabulary's token ToolCallsId gives way to the special token [TOOL_CALLS].
    static string WithToolCallsToken(string tokenizerJson) => ToolChat.WithSpecialTokens(tokenizerJson, (ToolCallsId, MistralToolCalls.Open));

    protected override string ModelDir() => _dir ??= MakeFolder();

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_dir != null) Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// Mistral tool calls through /v1/chat/completions: forced calls begin with the [TOOL_CALLS] token and come back as
/// tool_calls with 9-character ids, whole and streamed alike; "auto" replies are the library's text split the same way;
/// the control token shows in replies that offer tools only; OpenAI-style ids in the messages reach the template.
/// </summary>
public sealed class MistralServerToolTests(MistralToolServerFixture f) : IClassFixture<MistralToolServerFixture>
{
    const string Head = "[TOOL_CALLS] [{\"name\": \"";

    static ToolChat.Reply Mistral(ToolChat.Reply r)
    {
        Assert.All(r.Ids, id => Assert.Matches("^[A-Za-z0-9]{9}$", id));
        return r;
    }

    [Fact]
    public void TheModelHasMistralsFormatAndItsToken()
    {
        Assert.Equal(ToolCallSyntax.Mistral, f.Model.ToolCallSyntax);
        Assert.Same(MistralToolCalls.Spaced, f.Model.ToolCallFormat);
        var tok = f.Model.Tokenizer;
        Assert.Equal(MistralToolServerFixture.ToolCallsId, tok.TokenToId(MistralToolCalls.Open));
        Assert.True(tok.IsSpecial(MistralToolServerFixture.ToolCallsId));
        // Plain decoding leaves the control token out; shown, it is there, also when streamed token by token.
        int[] ids = [MistralToolServerFixture.ToolCallsId, .. tok.Encode(" [{\"name\": \"f\"}]", addSpecialTokens: false)];
        Assert.Equal(" [{\"name\": \"f\"}]", tok.Decode(ids));
        var shown = new HashSet<string> { MistralToolCalls.Open };
        Assert.Equal("[TOOL_CALLS] [{\"name\": \"f\"}]", tok.Decode(ids, shown));
        var streamer = tok.CreateStreamer(shown);
        Assert.Equal("[TOOL_CALLS] [{\"name\": \"f\"}]", string.Concat(ids.Select(streamer.Append)) + streamer.Flush());
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.9, 2)]
    public async Task ANamedToolChoiceGivesOneCallToIt(double temperature, int seed)
    {
        var choice = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather" } };
        var whole = Mistral(ToolChat.Read(await ToolChat.Post(f.Http, ToolChat.Body(choice, stream: false, temperature, seed, maxTokens: 200))));
        ToolChat.AssertForced(whole, ["get_weather"], Head);
        var streamed = Mistral(ToolChat.Read(await ToolChat.PostStream(f.Http, ToolChat.Body(choice.DeepClone(), stream: true, temperature, seed, maxTokens: 200))));
        Assert.Equal(whole.Finish, streamed.Finish);
        Assert.Equal(whole.Calls, streamed.Calls); // same seed, same tokens
        if (whole.Finish != "tool_calls") Assert.Equal(whole.Content, streamed.Content);
    }

    [Fact]
    public async Task RequiredGivesACallThatBeginsWithTheControlToken()
    {
        int calls = 0;
        for (int seed = 0; seed < 3; seed++)
        {
            var r = Mistral(ToolChat.Read(await ToolChat.Post(f.Http, ToolChat.Body("required", stream: false, temperature: 1.0, seed, maxTokens: 200))));
            ToolChat.AssertForced(r, ["get_weather", "get_time"], Head);
            calls += r.Calls.Count;
        }
        var time = Mistral(ToolChat.Read(await ToolChat.Post(f.Http, ToolChat.Body("required", stream: false, maxTokens: 200, tools: ToolChat.Time))));
        ToolChat.AssertForced(time, ["get_time"], Head);
        Assert.True(calls + time.Calls.Count > 0, "no forced call closed within 200 tokens");

        // The library's forced reply: the control token is the first token (not the marker spelt out), shown in the text.
        var settings = new GenerationSettings { MaxTokens = 200, RequiredToolCall = [ToolChat.Time], TopLogprobs = 0 };
        var stats = new GenerationStats();
        string text = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "Time?")], [ToolChat.Time], settings, stats));
        Assert.True(stats.Logprobs!.TryPeek(out var first));
        Assert.Equal(MistralToolServerFixture.ToolCallsId, first.Token);
        Assert.StartsWith("[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": ", text);
        Assert.Equal("get_time", Assert.Single(f.Model.ToolCallFormat!.Parse(text).Calls).Name);
    }

    [Fact]
    public async Task AutoRepliesAreTheLibrarysTextSplit()
    {
        var settings = new GenerationSettings { Temperature = 0, MaxTokens = 48 };
        string text = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "What is the weather in Paris?")], [ToolChat.Weather, ToolChat.Time], settings));
        var (content, calls) = MistralToolCalls.Parse(text);
        var whole = Mistral(ToolChat.Read(await ToolChat.Post(f.Http, ToolChat.Body("auto", stream: false, maxTokens: 48))));
        Assert.Equal(content, whole.Content);
        Assert.Equal(calls.Select(c => c.Name), whole.Calls.Select(c => c.Name));
        Assert.Equal(calls.Count > 0, whole.Finish == "tool_calls");
        var streamed = Mistral(ToolChat.Read(await ToolChat.PostStream(f.Http, ToolChat.Body(null, stream: true, maxTokens: 48))));
        Assert.Equal(content, streamed.Content);
        Assert.Equal(whole.Calls, streamed.Calls);
    }

    [Fact]
    public async Task OpenAiCallIdsInTheMessagesReachTheTemplate()
    {
        var json = await ToolChat.Post(f.Http, ToolChat.HistoryBody("20"));
        var typed = ToolChat.History("20");
        int[] want = f.Model.ChatTokens(typed, [ToolChat.Weather]);
        Assert.Contains(MistralToolServerFixture.ToolCallsId, want); // the call in the history is the control token
        string id = ToolCall.MistralId("call_1");
        Assert.Contains($"\"id\": \"{id}\"}}]<|endoftext|>[TOOL_RESULTS] {{\"content\": 20, \"call_id\": \"{id}\"}}[/TOOL_RESULTS]",
            f.Model.Tokenizer.Decode(want, skipSpecialTokens: false));
        Assert.Equal(want.Length, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }
}
