using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Extensions.AI;
using Microsoft.Extensions.AI;
using DaopMessage = Daop.Engine.Load.Chat.ChatMessage;

namespace Daop.Tests.Api;

/// <summary>
/// <see cref="DaopChatClient"/>: the reply is the text <see cref="DaopModel.ChatAsync"/> gives for the same conversation
/// and settings, whole or streamed, with token usage and the finish reason; options map to the generation settings; what
/// is not implemented (tools the template cannot carry, JSON schemas, non-text contents) is refused, not ignored; function
/// tools go through the template and come back as calls.
/// </summary>
public sealed class ChatClientTests : IDisposable
{
    readonly DaopModel _model = DaopModel.Load(TestPaths.DefaultModel);

    public void Dispose() => _model.Dispose();

    [Fact]
    public async Task TheReplyIsTheModelsChatReplyWithUsage()
    {
        var settings = new GenerationSettings { MaxTokens = 24, Temperature = 0 };
        var stats = new GenerationStats();
        string want = await Pieces.Join(_model.ChatAsync([new DaopMessage("system", "You write Python."), new DaopMessage("user", "Sort a list")], settings, stats));

        IChatClient client = new DaopChatClient(_model);
        ChatMessage[] messages = [new(ChatRole.System, "You write Python."), new(ChatRole.User, "Sort a list")];
        var options = new ChatOptions { MaxOutputTokens = 24, Temperature = 0 };
        var reply = await client.GetResponseAsync(messages, options);
        Assert.Equal(want, reply.Text);
        Assert.Equal(ChatRole.Assistant, reply.Messages.Single().Role);
        Assert.Equal(stats.PromptTokens, reply.Usage!.InputTokenCount);
        Assert.Equal(stats.GeneratedTokens, reply.Usage.OutputTokenCount);
        Assert.Equal(stats.Finish == FinishReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, reply.FinishReason);
        Assert.Equal(_model.Info.Name, reply.ModelId);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(messages, options)) updates.Add(u);
        Assert.True(updates.Count > 2);
        Assert.Equal(want, string.Concat(updates.Select(u => u.Text)));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        Assert.NotNull(updates[^1].FinishReason);
        Assert.Equal(stats.GeneratedTokens, updates[^1].Contents.OfType<UsageContent>().Single().Details.OutputTokenCount);
    }

    [Fact]
    public async Task OptionsReachTheGenerator()
    {
        IChatClient client = new DaopChatClient(_model, "my-model");
        ChatMessage[] messages = [new(ChatRole.User, "Write a loop")];
        var full = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 32, Temperature = 0 });
        Assert.Equal("my-model", full.ModelId);
        var three = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 3, Temperature = 0 });
        Assert.Equal(3, three.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, three.FinishReason);
        Assert.StartsWith(three.Text, full.Text);
        // A stop sequence taken from the middle of the full reply ends it there.
        string stop = full.Text.Substring(full.Text.Length / 2, Math.Min(3, full.Text.Length - full.Text.Length / 2));
        var stopped = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 32, Temperature = 0, StopSequences = [stop] });
        Assert.Equal(full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        var sampled = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 16, Temperature = 1.5f, Seed = 7 });
        var again = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 16, Temperature = 1.5f, Seed = 7 });
        Assert.Equal(sampled.Text, again.Text);
    }

    /// <summary>ChatResponseFormat.Json (no schema) constrains the reply to a JSON object, or its prefix where tokens ran out.</summary>
    [Fact]
    public async Task JsonResponseFormatGivesAJsonObject()
    {
        IChatClient client = new DaopChatClient(_model);
        var reply = await client.GetResponseAsync([new(ChatRole.User, "Give me a JSON object")],
            new ChatOptions { ResponseFormat = ChatResponseFormat.Json, MaxOutputTokens = 64, Temperature = 0.8f, Seed = 3 });
        var prefix = new Daop.Engine.Generate.JsonPrefix();
        foreach (char c in reply.Text) Assert.True(prefix.Feed(c), reply.Text);
        Assert.StartsWith("{", reply.Text.TrimStart());
        Assert.Equal(reply.FinishReason == ChatFinishReason.Stop, prefix.IsComplete);
    }

    /// <summary>A JSON schema constrains the reply to a value it accepts, or its prefix where tokens ran out.</summary>
    [Fact]
    public async Task JsonSchemaResponseFormatGivesAValueOfTheSchema()
    {
        IChatClient client = new DaopChatClient(_model);
        var schema = System.Text.Json.JsonDocument.Parse("""{"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3}""").RootElement;
        var reply = await client.GetResponseAsync([new(ChatRole.User, "Name some colours")],
            new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema), MaxOutputTokens = 64, Temperature = 0.8f, Seed = 3 });
        var g = JsonSchemaGrammar.Compile(schema.GetRawText());
        var prefix = new JsonSchemaPrefix(g);
        foreach (char c in reply.Text) Assert.True(prefix.Feed(g, c), reply.Text);
        Assert.Equal(reply.FinishReason == ChatFinishReason.Stop, prefix.IsComplete);
        if (prefix.IsComplete)
            Assert.All(System.Text.Json.JsonDocument.Parse(reply.Text).RootElement.EnumerateArray(), c => Assert.Contains(c.GetString(), new[] { "red", "green", "blue" }));
    }

    [Fact]
    public async Task WhatIsNotImplementedIsRefused()
    {
        IChatClient client = new DaopChatClient(_model);
        ChatMessage[] hi = [new(ChatRole.User, "hi")];
        var tool = AIFunctionFactory.Create((int x) => x + 1, "increment");
        Assert.Contains("Tools", (await Assert.ThrowsAsync<NotSupportedException>(() =>
            client.GetResponseAsync(hi, new ChatOptions { Tools = [tool] }))).Message);
        var schema = System.Text.Json.JsonDocument.Parse("{\"type\": \"string\", \"pattern\": \"a+\"}").RootElement;
        Assert.Contains("'pattern'", (await Assert.ThrowsAsync<JsonSchemaException>(() =>
            client.GetResponseAsync(hi, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema) }))).Message);
        var image = new ChatMessage(ChatRole.User, [new TextContent("look"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);
        Assert.Contains("messages[0] holds DataContent", Assert.Throws<NotSupportedException>(() => client.GetStreamingResponseAsync([image])).Message);
        Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync([]));
        Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync(hi, new ChatOptions { Temperature = -1 }));
        Assert.Same(_model, client.GetService(typeof(DaopModel)));
        Assert.Equal("daop", ((ChatClientMetadata)client.GetService(typeof(ChatClientMetadata))!).ProviderName);
    }

    [Fact]
    public async Task FunctionToolsComeBackAsCallsAndTheirResultsGoIn()
    {
        string dir = Daop.Tests.Server.ToolServerFixture.MakeFolder();
        try
        {
            using var model = DaopModel.Load(dir);
            IChatClient client = new DaopChatClient(model);
            var weather = AIFunctionFactory.Create((string city) => "sunny", "get_weather", "Get the weather in a city");
            var time = AIFunctionFactory.Create(() => "12:00", "get_time", "The time now");
            ChatMessage[] ask = [new(ChatRole.User, "Weather in Paris?")];

            // A named function is forced: the reply is one call to it (or, cut short, the start of one as text).
            var forced = await client.GetResponseAsync(ask, new ChatOptions
            {
                Tools = [weather, time], ToolMode = ChatToolMode.RequireSpecific("get_weather"), MaxOutputTokens = 200, Temperature = 0,
            });
            var calls = forced.Messages.Single().Contents.OfType<FunctionCallContent>().ToList();
            if (forced.FinishReason == ChatFinishReason.ToolCalls)
            {
                var call = Assert.Single(calls);
                Assert.Equal("get_weather", call.Name);
                Assert.StartsWith("call_", call.CallId);
                Assert.Equal("", forced.Text);
            }
            else
            {
                Assert.Equal(ChatFinishReason.Length, forced.FinishReason);
                Assert.Empty(calls);
                Assert.StartsWith("<tool_call>", forced.Text);
            }

            // Auto: the text the library gives with the same tools, split the same way.
            var settings = new GenerationSettings { MaxTokens = 40, Temperature = 0 };
            var defs = new[] { new Daop.Engine.Load.Chat.ToolDefinition("get_weather", "Get the weather in a city", weather.JsonSchema.GetRawText()) };
            var (content, made) = HermesToolCalls.Parse(await Pieces.Join(model.ChatAsync([new DaopMessage("user", "Weather in Paris?")], defs, settings)));
            var auto = await client.GetResponseAsync(ask, new ChatOptions { Tools = [weather], MaxOutputTokens = 40, Temperature = 0 });
            Assert.Equal(content ?? "", auto.Text);
            Assert.Equal(made.Select(c => c.Name), auto.Messages.Single().Contents.OfType<FunctionCallContent>().Select(c => c.Name));

            // A call and its result in the conversation render as the typed messages do.
            ChatMessage[] history =
            [
                new(ChatRole.User, "Weather in Paris?"),
                new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
                new(ChatRole.Tool, [new FunctionResultContent("call_1", "sunny")]),
            ];
            var next = await client.GetResponseAsync(history, new ChatOptions { Tools = [weather], MaxOutputTokens = 2, Temperature = 0 });
            DaopMessage[] typed =
            [
                new("user", "Weather in Paris?"),
                new("assistant", "") { ToolCalls = [new Daop.Engine.Load.Chat.ToolCall("call_1", "get_weather", "{\"city\":\"Paris\"}")] },
                new("tool", "sunny") { ToolCallId = "call_1" },
            ];
            int[] want = model.ChatTokens(typed, defs);
            Assert.Contains("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}", model.Tokenizer.Decode(want));
            Assert.Equal(want.Length, next.Usage!.InputTokenCount);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A model with Mistral's template: a forced call comes back as a FunctionCallContent with a 9-character id, and that
    /// call and its result go back in (the template refuses other ids).
    /// </summary>
    [Fact]
    public async Task MistralCallsComeBackWithIdsItsTemplateTakes()
    {
        string dir = Daop.Tests.Server.MistralToolServerFixture.MakeFolder();
        try
        {
            using var model = DaopModel.Load(dir);
            IChatClient client = new DaopChatClient(model);
            // No arguments at all, so the forced call closes at once.
            var time = AIFunctionFactory.CreateDeclaration("get_time", "The time now",
                System.Text.Json.JsonDocument.Parse("""{"type": "object", "properties": {}, "additionalProperties": false}""").RootElement);
            List<ChatMessage> chat = [new(ChatRole.User, "Time?")];
            var forced = await client.GetResponseAsync(chat, new ChatOptions { Tools = [time], ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 200 });
            Assert.True(forced.FinishReason == ChatFinishReason.ToolCalls, forced.Text);
            var call = Assert.Single(forced.Messages.Single().Contents.OfType<FunctionCallContent>());
            Assert.Equal("get_time", call.Name);
            Assert.Matches("^[A-Za-z0-9]{9}$", call.CallId);
            Assert.Equal("", forced.Text);
            chat.AddRange(forced.Messages);
            chat.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, "12:00")]));
            var next = await client.GetResponseAsync(chat, new ChatOptions { Tools = [time], MaxOutputTokens = 2 });
            DaopMessage[] typed =
            [
                new("user", "Time?"),
                new("assistant", "") { ToolCalls = [new Daop.Engine.Load.Chat.ToolCall(call.CallId, "get_time", "{}")] },
                new("tool", "12:00") { ToolCallId = call.CallId },
            ];
            int[] want = model.ChatTokens(typed, [new Daop.Engine.Load.Chat.ToolDefinition("get_time", "The time now", time.JsonSchema.GetRawText())]);
            Assert.Contains($"\"call_id\": \"{call.CallId}\"", model.Tokenizer.Decode(want));
            Assert.Equal(want.Length, next.Usage!.InputTokenCount);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Microsoft.Extensions.AI's function-invocation loop over Daop: a forced call to get_time runs the function, its
    /// result goes back in, and the next reply (the tool mode no longer forced) is the model's answer to it.
    /// </summary>
    [Fact]
    public async Task TheFunctionInvocationLoopRunsTheCalledFunction()
    {
        string dir = Daop.Tests.Server.ToolServerFixture.MakeFolder();
        try
        {
            using var model = DaopModel.Load(dir);
            int invoked = 0;
            var time = AIFunctionFactory.Create(() => { invoked++; return "12:00"; }, "get_time", "The time now");
            IChatClient client = new ChatClientBuilder(new DaopChatClient(model)).UseFunctionInvocation().Build();
            var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "What time is it?")], new ChatOptions
            {
                Tools = [time], ToolMode = ChatToolMode.RequireSpecific("get_time"), MaxOutputTokens = 120, Temperature = 0,
            });
            // The forced call closes within the tokens (greedy, this model), so the loop ran the function once and
            // returned the call, its result and the next reply.
            Assert.Equal(1, invoked);
            var call = reply.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
            Assert.Equal("get_time", call.Name);
            var result = reply.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().Single();
            Assert.Equal(call.CallId, result.CallId);
            Assert.Equal(ChatRole.Assistant, reply.Messages[^1].Role);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
