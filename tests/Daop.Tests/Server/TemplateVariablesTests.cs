using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Api;
using Daop.Engine.Load.Chat;
using Daop.Extensions.AI;
using Daop.Server;
using AI = Microsoft.Extensions.AI;

namespace Daop.Tests.Server;

/// <summary>
/// A chat request's own template variables (OpenAI's <c>reasoning_effort</c>, vLLM's <c>chat_template_kwargs</c>) reach
/// the chat template: through the library (<see cref="DaopModel.ChatTokens(IReadOnlyList{ChatMessage}, IReadOnlyList{ToolDefinition}, IReadOnlyDictionary{string, object?}?, CancellationToken)"/>)
/// and the server alike, on GPT-OSS's template (which reads both); bad ones are refused naming the field.
/// </summary>
public sealed class TemplateVariablesTests(HarmonyServerFixture f) : IClassFixture<HarmonyServerFixture>
{
    static readonly ChatMessage[] Hello = [new("user", "Hello")];

    string Prompt(IReadOnlyDictionary<string, object?>? vars) => f.Model.Tokenizer.Decode(f.Model.ChatTokens(Hello, [], vars), skipSpecialTokens: false);

    [Fact]
    public void TheLibraryPassesThemToTheTemplate()
    {
        Assert.Contains("Reasoning: medium", Prompt(null));    // the template's default
        string high = Prompt(new Dictionary<string, object?> { ["reasoning_effort"] = "high" });
        Assert.Contains("Reasoning: high", high);
        Assert.DoesNotContain("Reasoning: medium", high);
        Assert.StartsWith("<|start|>system<|message|>You are a unit test.",
            Prompt(new Dictionary<string, object?> { ["model_identity"] = "You are a unit test." }));
        // with tools, the variables and the tools both reach it
        var tokens = f.Model.ChatTokens(Hello, [ToolChat.Weather], new Dictionary<string, object?> { ["reasoning_effort"] = "low" });
        string withTools = f.Model.Tokenizer.Decode(tokens, skipSpecialTokens: false);
        Assert.Contains("Reasoning: low", withTools);
        Assert.Contains("get_weather", withTools);
    }

    [Fact]
    public async Task TheServerRendersTheRequestsVariables()
    {
        async Task<int> PromptTokens(JsonObject extra)
        {
            var body = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hello" }), ["max_tokens"] = 1 };
            foreach (var (k, v) in extra) body[k] = v?.DeepClone();
            var json = await ToolChat.Post(f.Http, body.ToJsonString());
            return json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        }
        const string identity = "You are a test.";   // shorter than the default identity: fewer prompt tokens
        int plain = await PromptTokens([]);
        Assert.Equal(f.Model.ChatTokens(Hello, [], null).Length, plain);
        int named = await PromptTokens(new JsonObject { ["chat_template_kwargs"] = new JsonObject { ["model_identity"] = identity } });
        Assert.Equal(f.Model.ChatTokens(Hello, [], new Dictionary<string, object?> { ["model_identity"] = identity }).Length, named);
        Assert.True(named < plain, $"{named} tokens with the short identity, {plain} without");
        int high = await PromptTokens(new JsonObject { ["reasoning_effort"] = "high" });
        Assert.Equal(f.Model.ChatTokens(Hello, [], new Dictionary<string, object?> { ["reasoning_effort"] = "high" }).Length, high);
    }

    static ChatRequest Parse(string json) =>
        OpenAiRequests.ParseChat(Encoding.UTF8.GetBytes(json), new DaopServerOptions(), 64, SamplingDefaults.None);

    [Fact]
    public void KwargsWinOverReasoningEffortAndKeepTheirJsonValues()
    {
        var vars = Parse("""
            {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low",
             "chat_template_kwargs": {"reasoning_effort": "high", "enable_thinking": false, "extra": {"a": [1, 2.5, null]}}}
            """).TemplateVariables!;
        Assert.Equal("high", ((JsonElement)vars["reasoning_effort"]!).GetString());
        Assert.Equal(JsonValueKind.False, ((JsonElement)vars["enable_thinking"]!).ValueKind);
        Assert.Equal("""{"a": [1, 2.5, null]}""", ((JsonElement)vars["extra"]!).GetRawText());
        Assert.Null(Parse("""{"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {}}""").TemplateVariables);
        Assert.Null(Parse("""{"messages": [{"role": "user", "content": "x"}]}""").TemplateVariables);
    }

    [Theory]
    [InlineData("\"reasoning_effort\": \"extreme\"", "reasoning_effort")]
    [InlineData("\"reasoning_effort\": 3", "reasoning_effort")]
    [InlineData("\"chat_template_kwargs\": [1]", "chat_template_kwargs")]
    [InlineData("\"chat_template_kwargs\": {\"messages\": []}", "chat_template_kwargs.messages")]
    [InlineData("\"chat_template_kwargs\": {\"tools\": null}", "chat_template_kwargs.tools")]
    [InlineData("\"chat_template_kwargs\": {\"add_generation_prompt\": false}", "chat_template_kwargs.add_generation_prompt")]
    [InlineData("\"chat_template_kwargs\": {\"9lives\": 1}", "chat_template_kwargs.9lives")]
    [InlineData("\"chat_template_kwargs\": {\"a-b\": 1}", "chat_template_kwargs.a-b")]
    [InlineData("\"chat_template_kwargs\": {\"\": 1}", "chat_template_kwargs.")]
    public void BadVariablesAreRefusedNamingTheField(string field, string param)
    {
        var e = Assert.Throws<ApiException>(() => Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], " + field + "}"));
        Assert.Equal(400, e.Status);
        Assert.Equal(param, e.Param);
    }

    [Fact]
    public void AtMostSoManyVariables()
    {
        static string Body(int n) => "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"chat_template_kwargs\": {"
            + string.Join(", ", Enumerable.Range(0, n).Select(i => $"\"v{i}\": {i}")) + "}}";
        Assert.Equal(ChatTemplateVariables.MaxCount, Parse(Body(ChatTemplateVariables.MaxCount)).TemplateVariables!.Count);
        var e = Assert.Throws<ApiException>(() => Parse(Body(ChatTemplateVariables.MaxCount + 1)));
        Assert.Equal("chat_template_kwargs", e.Param);
    }

    [Fact]
    public async Task TheServerRefusesABadOneWith400()
    {
        using var resp = await f.Http.PostAsync("v1/chat/completions", new StringContent(
            """{"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": []}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        Assert.Contains("chat_template_kwargs.messages", await resp.Content.ReadAsStringAsync());
    }

    // The IChatClient sets the same variables: ChatOptions.Reasoning.Effort and AdditionalProperties["chat_template_kwargs"].
    [Fact]
    public void TheChatClientMapsItsOptionsToVariables()
    {
        static AI.ChatOptions Effort(AI.ReasoningEffort e) => new() { Reasoning = new AI.ReasoningOptions { Effort = e } };
        Assert.Null(DaopChatClient.TemplateVariables(null));
        Assert.Null(DaopChatClient.TemplateVariables(new AI.ChatOptions()));
        Assert.Equal("low", DaopChatClient.TemplateVariables(Effort(AI.ReasoningEffort.Low))!["reasoning_effort"]);
        Assert.Equal("medium", DaopChatClient.TemplateVariables(Effort(AI.ReasoningEffort.Medium))!["reasoning_effort"]);
        Assert.Equal("high", DaopChatClient.TemplateVariables(Effort(AI.ReasoningEffort.High))!["reasoning_effort"]);
        foreach (var none in new[] { AI.ReasoningEffort.None, AI.ReasoningEffort.ExtraHigh })
            Assert.Contains(none.ToString(), Assert.Throws<NotSupportedException>(() => DaopChatClient.TemplateVariables(Effort(none))).Message);

        // a dictionary or a JSON object; the kwargs win over the effort, as in a server request
        var options = Effort(AI.ReasoningEffort.Low);
        options.AdditionalProperties = new() { [DaopChatClient.TemplateVariablesKey] = new Dictionary<string, object?> { ["reasoning_effort"] = "high", ["enable_thinking"] = false } };
        var vars = DaopChatClient.TemplateVariables(options)!;
        Assert.Equal("high", vars["reasoning_effort"]);
        Assert.Equal(false, vars["enable_thinking"]);
        options.AdditionalProperties[DaopChatClient.TemplateVariablesKey] = JsonDocument.Parse("""{"model_identity": "x"}""").RootElement;
        Assert.Equal("x", ((JsonElement)DaopChatClient.TemplateVariables(options)!["model_identity"]!).GetString());
        options.AdditionalProperties[DaopChatClient.TemplateVariablesKey] = "enable_thinking=false";
        Assert.Contains(DaopChatClient.TemplateVariablesKey, Assert.Throws<ArgumentException>(() => DaopChatClient.TemplateVariables(options)).Message);

        Assert.True(DaopChatClient.KeepsReasoning(null));
        Assert.True(DaopChatClient.KeepsReasoning(new AI.ReasoningOptions { Output = AI.ReasoningOutput.Full }));
        Assert.False(DaopChatClient.KeepsReasoning(new AI.ReasoningOptions { Output = AI.ReasoningOutput.None }));
        Assert.Throws<NotSupportedException>(() => DaopChatClient.KeepsReasoning(new AI.ReasoningOptions { Output = AI.ReasoningOutput.Summary }));
    }

    [Fact]
    public async Task TheChatClientRendersTheVariablesAsTheLibraryDoes()
    {
        const string identity = "You are a test.";
        AI.IChatClient client = new DaopChatClient(f.Model);
        AI.ChatMessage[] hello = [new(AI.ChatRole.User, "Hello")];
        var options = new AI.ChatOptions
        {
            MaxOutputTokens = 1,
            AdditionalProperties = new() { [DaopChatClient.TemplateVariablesKey] = new Dictionary<string, object?> { ["model_identity"] = identity } },
        };
        var reply = await client.GetResponseAsync(hello, options);
        long want = f.Model.ChatTokens(Hello, [], new Dictionary<string, object?> { ["model_identity"] = identity }).Length;
        Assert.Equal(want, reply.Usage!.InputTokenCount);
        Assert.True(want < f.Model.ChatTokens(Hello, [], null).Length);   // the short identity took effect

        // a name the renderer sets itself is refused before anything runs, naming it
        options.AdditionalProperties[DaopChatClient.TemplateVariablesKey] = new Dictionary<string, object?> { ["messages"] = new List<object?>() };
        Assert.Contains("'messages'", Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync(hello, options)).Message);
        // and so is one too many
        options.AdditionalProperties[DaopChatClient.TemplateVariablesKey] = Enumerable.Range(0, ChatTemplateVariables.MaxCount + 1).ToDictionary(i => $"v{i}", i => (object?)i);
        Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync(hello, options));
    }
}
