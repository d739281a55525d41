using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Extensions.AI;
using Microsoft.Extensions.AI;
using DaopMessage = Daop.Engine.Load.Chat.ChatMessage;

namespace Daop.Tests.Api;

/// <summary>
/// <see cref="DaopChatClient"/>: the reply is the text <see cref="DaopModel.ChatAsync"/> gives for the same conversation
/// and settings, whole or streamed, with token usage and the finish reason; options map to the generation settings; what
/// is not implemented (tools, JSON formats, non-text contents) is refused, not ignored.
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

    [Fact]
    public async Task WhatIsNotImplementedIsRefused()
    {
        IChatClient client = new DaopChatClient(_model);
        ChatMessage[] hi = [new(ChatRole.User, "hi")];
        var tool = AIFunctionFactory.Create((int x) => x + 1, "increment");
        Assert.Contains("Tools", (await Assert.ThrowsAsync<NotSupportedException>(() =>
            client.GetResponseAsync(hi, new ChatOptions { Tools = [tool] }))).Message);
        var schema = System.Text.Json.JsonDocument.Parse("{\"type\": \"object\"}").RootElement;
        Assert.Contains("ResponseFormat", (await Assert.ThrowsAsync<NotSupportedException>(() =>
            client.GetResponseAsync(hi, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema) }))).Message);
        var image = new ChatMessage(ChatRole.User, [new TextContent("look"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);
        Assert.Contains("messages[0] holds DataContent", Assert.Throws<NotSupportedException>(() => client.GetStreamingResponseAsync([image])).Message);
        Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync([]));
        Assert.Throws<ArgumentException>(() => client.GetStreamingResponseAsync(hi, new ChatOptions { Temperature = -1 }));
        Assert.Same(_model, client.GetService(typeof(DaopModel)));
        Assert.Equal("daop", ((ChatClientMetadata)client.GetService(typeof(ChatClientMetadata))!).ProviderName);
    }
}
