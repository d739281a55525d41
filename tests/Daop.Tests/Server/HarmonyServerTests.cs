using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Server;

/// <summary>
/// The embedded model's weights with GPT-OSS's chat template and a tokenizer that has harmony's seven special tokens
/// (the ids of the vocabulary's last merges, so the weights fit unchanged), behind a real server. gptoss-tiny has no
/// tokenizer, and the embedded model was not trained on harmony, so the tests cover how replies stop, how calls are forced,
/// decoded and parsed, and that whole and streamed replies split alike, not what GPT-OSS would answer.
/// </summary>
public sealed class HarmonyServerFixture : ServerFixture
{
    /// <summary>The id of the first marker of <see cref="HarmonyReply.Markers"/>; the others follow.</summary>
    public const int FirstMarkerId = 4089;

    string? _dir;

    /// <summary>The id <paramref name="marker"/> gets.</summary>
    public static int Id(string marker) => FirstMarkerId + HarmonyReply.Markers.ToList().IndexOf(marker);

    protected override string ModelDir()
    {
        if (_dir != null) return _dir;
        _dir = ToolServerFixture.LinkedFolder("openai-gpt-oss-120b.jinja", "tokenizer.json");
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), ToolChat.WithSpecialTokens(
            File.ReadAllText(Path.Combine(TestPaths.DefaultModel, "tokenizer.json")), [.. HarmonyReply.Markers.Select(m => (Id(m), m))]));
        return _dir;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_dir != null) Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// Harmony replies through /v1/chat/completions: a chat reply stops at &lt;|return|&gt; and &lt;|call|&gt;, not at
/// &lt;|end|&gt;; forced calls begin with the &lt;|channel|&gt; token and come back as tool_calls, whole and streamed; any
/// reply is the library's text split by <see cref="HarmonyReply"/>, with the analysis channel as reasoning_content.
/// </summary>
public sealed class HarmonyServerTests(HarmonyServerFixture f) : IClassFixture<HarmonyServerFixture>
{
    const string Head = "<|channel|>commentary to=functions.";

    [Fact]
    public void AReplyEndsAtReturnAndCallNotAtEnd()
    {
        Assert.Equal(ToolCallSyntax.Harmony, f.Model.ToolCallSyntax);
        Assert.Same(HarmonyToolCalls.Format, f.Model.ToolCallFormat);
        var tok = f.Model.Tokenizer;
        foreach (string m in HarmonyReply.Markers) Assert.True(tok.IsSpecial(HarmonyServerFixture.Id(m)), m);
        Assert.Contains(HarmonyServerFixture.Id(HarmonyReply.Return), f.Model.ChatStopTokenIds);
        Assert.Contains(HarmonyServerFixture.Id(HarmonyReply.Call), f.Model.ChatStopTokenIds);
        Assert.DoesNotContain(HarmonyServerFixture.Id(HarmonyReply.End), f.Model.ChatStopTokenIds);
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.9, 2)]
    public async Task ANamedToolChoiceGivesOneCallToIt(double temperature, int seed)
    {
        var choice = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather" } };
        var whole = ToolChat.Read(await ToolChat.Post(f.Http, ToolChat.Body(choice, stream: false, temperature, seed, maxTokens: 200)));
        ToolChat.AssertForced(whole, ["get_weather"], Head);
        var streamed = ToolChat.Read(await ToolChat.PostStream(f.Http, ToolChat.Body(choice.DeepClone(), stream: true, temperature, seed, maxTokens: 200)));
        Assert.Equal(whole.Finish, streamed.Finish);
        Assert.Equal(whole.Calls, streamed.Calls);
    }

    [Fact]
    public async Task TheLibrarysForcedCallBeginsWithTheChannelToken()
    {
        var settings = new GenerationSettings { MaxTokens = 200, RequiredToolCall = [ToolChat.Time], TopLogprobs = 0 };
        var stats = new GenerationStats();
        string text = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "Time?")], [ToolChat.Time], settings, stats));
        Assert.True(stats.Logprobs!.TryPeek(out var first));
        Assert.Equal(HarmonyServerFixture.Id(HarmonyReply.Channel), first.Token);
        string header = Head + "get_time " + HarmonyReply.Constrain + "json" + HarmonyReply.Message;
        Assert.StartsWith(header, text);
        // The arguments' grammar lets whitespace come first (an untrained model writes much of it), then an object.
        string args = text[header.Length..].TrimStart();
        Assert.True(args.Length == 0 || args[0] == '{', text);
        if (stats.Finish != FinishReason.MaxTokens)
            Assert.Equal("get_time", Assert.Single(HarmonyReply.Parse(text).Calls).Name);
    }

    [Theory]
    [InlineData(0.0, 1, 40)]
    [InlineData(1.0, 3, 60)]
    public async Task RepliesAreTheLibrarysTextSplitWholeAndStreamed(double temperature, int seed, int maxTokens)
    {
        string Body(bool stream) => new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hello" }),
            ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["seed"] = seed, ["stream"] = stream,
        }.ToJsonString();
        var settings = new GenerationSettings { Temperature = (float)temperature, Seed = (ulong)seed, MaxTokens = maxTokens };
        string text = await Pieces.Join(f.Model.ChatAsync([new ChatMessage("user", "Hello")], settings));
        var (content, reasoning, _) = HarmonyReply.Parse(text);

        var message = (await ToolChat.Post(f.Http, Body(false))).GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(content, message.GetProperty("content").GetString());
        Assert.Equal(reasoning, message.TryGetProperty("reasoning_content", out var r) ? r.GetString() : null);

        StringBuilder streamedContent = new(), streamedReasoning = new();
        foreach (var e in await ToolChat.PostStream(f.Http, Body(true)))
        {
            var delta = e.GetProperty("choices")[0].GetProperty("delta");
            if (delta.TryGetProperty("content", out var c)) streamedContent.Append(c.GetString());
            if (delta.TryGetProperty("reasoning_content", out var rc)) streamedReasoning.Append(rc.GetString());
        }
        Assert.Equal(content ?? "", streamedContent.ToString());
        Assert.Equal(reasoning ?? "", streamedReasoning.ToString());
    }
}
