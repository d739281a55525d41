using System.Runtime.CompilerServices;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Microsoft.Extensions.AI;
using DaopMessage = Daop.Engine.Load.Chat.ChatMessage;

namespace Daop.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over a loaded <see cref="DaopModel"/>: .NET AI apps (and Semantic Kernel through its
/// IChatClient bridge) send a conversation, the model's chat template renders it, and the reply comes back whole or
/// streamed, with token usage and why it stopped. Options map as the HTTP server maps OpenAI's fields; a value left out
/// comes from the model's <c>generation_config.json</c> (<see cref="DaopModel.SamplingDefaults"/>), else greedy.
/// What is not implemented is refused with <see cref="NotSupportedException"/>, never ignored: tools (function calls),
/// non-text response formats, and message contents other than text.
/// </summary>
/// <example>
/// <code>
/// using var model = DaopModel.Load("models/tiny-mixtral-code");
/// IChatClient chat = new DaopChatClient(model);
/// var reply = await chat.GetResponseAsync("Write hello world in Python", new ChatOptions { MaxOutputTokens = 64 });
/// Console.WriteLine(reply.Text);
/// </code>
/// </example>
/// <param name="model">The model; the client does not own it (dispose the model yourself).</param>
/// <param name="modelId">Model id reported in responses (default: the model's name).</param>
public sealed class DaopChatClient(DaopModel model, string? modelId = null) : IChatClient
{
    /// <summary>Most tokens a reply has when <see cref="ChatOptions.MaxOutputTokens"/> is not set.</summary>
    public const int DefaultMaxOutputTokens = 512;

    readonly DaopModel _model = model ?? throw new ArgumentNullException(nameof(model));
    readonly string _modelId = modelId ?? model.Info.Name;

    /// <summary>Provider "daop" and the model id.</summary>
    public ChatClientMetadata Metadata => new("daop", null, _modelId);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatResponseUpdate? last = null;
        await foreach (var u in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(u.Text);
            last = u;
        }
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ResponseId = last?.ResponseId,
            ModelId = _modelId,
            CreatedAt = last?.CreatedAt,
            FinishReason = last?.FinishReason,
            Usage = last?.Contents.OfType<UsageContent>().FirstOrDefault()?.Details,
        };
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        // Everything is checked before the first await: a bad call fails at once, not when enumerated.
        var conversation = Conversation(messages);
        var settings = Settings(options);
        var prompt = _model.ChatTokens(conversation, cancellationToken);
        _model.CheckPromptLength(prompt.Length);
        return Stream(prompt, settings, cancellationToken);
    }

    async IAsyncEnumerable<ChatResponseUpdate> Stream(int[] prompt, GenerationSettings settings, [EnumeratorCancellation] CancellationToken cancel)
    {
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        var stats = new GenerationStats();
        await foreach (string piece in _model.GenerateAsync(prompt, _model.ChatStopTokenIds.ToArray(), settings, stats, cancel).ConfigureAwait(false))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, ModelId = _modelId, CreatedAt = created };
        var usage = new UsageDetails
        {
            InputTokenCount = stats.PromptTokens, OutputTokenCount = stats.GeneratedTokens, TotalTokenCount = stats.PromptTokens + stats.GeneratedTokens,
        };
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
        {
            ResponseId = id, ModelId = _modelId, CreatedAt = created,
            FinishReason = stats.Finish is FinishReason.MaxTokens or FinishReason.ContextFull ? ChatFinishReason.Length : ChatFinishReason.Stop,
        };
    }

    // Text contents only; roles as the chat templates know them.
    static List<DaopMessage> Conversation(IEnumerable<ChatMessage> messages)
    {
        var list = new List<DaopMessage>();
        int i = 0;
        foreach (var m in messages)
        {
            ArgumentNullException.ThrowIfNull(m, $"messages[{i}]");
            foreach (var c in m.Contents)
                if (c is not TextContent and not UsageContent)
                    throw new NotSupportedException($"messages[{i}] holds {c.GetType().Name}: Daop takes text messages only (no images, tool calls or results)");
            list.Add(new DaopMessage(m.Role.Value, m.Text));
            i++;
        }
        if (list.Count == 0) throw new ArgumentException("the conversation has no messages", nameof(messages));
        return list;
    }

    GenerationSettings Settings(ChatOptions? o)
    {
        if (o?.Tools is { Count: > 0 }) throw new NotSupportedException("ChatOptions.Tools: tool calls are not implemented by Daop yet");
        // JSON without a schema is a constrained JSON object (GenerationSettings.JsonObject); a schema is not implemented.
        if (o?.ResponseFormat is ChatResponseFormatJson { Schema: not null })
            throw new NotSupportedException("ChatOptions.ResponseFormat with a JSON schema: schema-constrained output is not implemented by Daop yet (ChatResponseFormat.Json is)");
        var d = _model.SamplingDefaults;
        var s = new GenerationSettings
        {
            MaxTokens = o?.MaxOutputTokens ?? DefaultMaxOutputTokens,
            Temperature = o?.Temperature ?? d.Temperature ?? 0,
            TopP = o?.TopP ?? d.TopP ?? 1,
            TopK = o?.TopK ?? d.TopK ?? 0,
            MinP = d.MinP ?? 0,
            RepetitionPenalty = d.RepetitionPenalty ?? 1,
            FrequencyPenalty = o?.FrequencyPenalty ?? 0,
            PresencePenalty = o?.PresencePenalty ?? 0,
            Seed = o?.Seed is { } seed ? unchecked((ulong)seed) : 42,
            Stop = o?.StopSequences is { Count: > 0 } stop ? [.. stop] : null,
            JsonObject = o?.ResponseFormat is ChatResponseFormatJson,
        };
        s.Validate();
        return s;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        return serviceType.IsInstanceOfType(this) ? this : serviceType.IsInstanceOfType(_model) ? _model : null;
    }

    /// <summary>Nothing to release: the client does not own the model.</summary>
    public void Dispose() { }
}
