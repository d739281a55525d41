using System.Runtime.CompilerServices;
using System.Text.Json;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Microsoft.Extensions.AI;
using ChatTemplateVariables = Daop.Engine.Load.Chat.ChatTemplateVariables;
using DaopMessage = Daop.Engine.Load.Chat.ChatMessage;

namespace Daop.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over a loaded <see cref="DaopModel"/>: .NET AI apps (and Semantic Kernel through its
/// IChatClient bridge) send a conversation, the model's chat template renders it, and the reply comes back whole or
/// streamed, with token usage and why it stopped. Options map as the HTTP server maps OpenAI's fields; a value left out
/// comes from the model's <c>generation_config.json</c> (<see cref="DaopModel.SamplingDefaults"/>), else greedy.
/// Function tools (<see cref="AIFunctionDeclaration"/> in <see cref="ChatOptions.Tools"/>) are offered through the chat
/// template when the model's template has a tool-call format Daop parses (<see cref="DaopModel.ToolCallSyntax"/>); its
/// calls come back as <see cref="FunctionCallContent"/>, and <see cref="ChatToolMode.RequireAny"/> or a named function
/// forces one. <see cref="ChatResponseFormat.Json"/> constrains the reply to a JSON object, and a JSON schema to a value it
/// accepts (<see cref="JsonSchemaGrammar"/>'s subset; other keywords throw <see cref="JsonSchemaException"/>). What is
/// not implemented is refused with <see cref="NotSupportedException"/>, never ignored: other tools, and message contents
/// other than text, reasoning, function calls and their results. A model that reasons on a channel of its own (GPT-OSS's
/// harmony analysis) gives its reasoning as <see cref="TextReasoningContent"/>, and takes it back in an assistant message.
/// The chat template's own variables are set as the server sets them: <see cref="ReasoningOptions.Effort"/> Low, Medium
/// or High becomes <c>reasoning_effort</c> (GPT-OSS's template reads it; None and ExtraHigh have no such value and are
/// refused), and <see cref="ChatOptions.AdditionalProperties"/>' <see cref="TemplateVariablesKey"/> (a dictionary of
/// names to values, or a JSON object: vLLM's <c>chat_template_kwargs</c>, e.g. <c>enable_thinking: false</c> for
/// Qwen3) sets any others, checked by <see cref="ChatTemplateVariables"/>. <see cref="ReasoningOptions.Output"/> None
/// leaves the reasoning out of the reply (it is still generated); Summary is refused.
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

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key of the chat template's own variables (vLLM's name).</summary>
    public const string TemplateVariablesKey = "chat_template_kwargs";

    readonly DaopModel _model = model ?? throw new ArgumentNullException(nameof(model));
    readonly string _modelId = modelId ?? model.Info.Name;

    /// <summary>Provider "daop" and the model id.</summary>
    public ChatClientMetadata Metadata => new("daop", null, _modelId);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        var calls = new List<AIContent>();
        ChatResponseUpdate? last = null;
        await foreach (var u in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(u.Text);
            foreach (var r in u.Contents.OfType<TextReasoningContent>()) reasoning.Append(r.Text);
            calls.AddRange(u.Contents.OfType<FunctionCallContent>());
            last = u;
        }
        // The reasoning (when there is any), the text (when there is any, or when there are no calls), then the calls.
        List<AIContent> contents = text.Length > 0 || calls.Count == 0 ? [new TextContent(text.ToString()), .. calls] : calls;
        if (reasoning.Length > 0) contents.Insert(0, new TextReasoningContent(reasoning.ToString()));
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, contents))
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
        var (settings, tools) = Settings(options);
        bool keepReasoning = KeepsReasoning(options?.Reasoning);
        var prompt = _model.ChatTokens(conversation, tools, TemplateVariables(options), cancellationToken);
        _model.CheckPromptLength(prompt.Length);
        var split = ReplySplitter.For(_model.ToolCallFormat, tools.Count > 0, _model.ChatTemplate?.Thinks == true);
        return Stream(prompt, split != null ? settings with { KeepToolCallMarkers = true } : settings, split, keepReasoning, cancellationToken);
    }

    // reasoning_effort from ChatOptions.Reasoning, then AdditionalProperties' chat_template_kwargs, which win (as in the
    // server's requests); null when neither is set. Names and count are checked by DaopModel.ChatTokens.
    internal static Dictionary<string, object?>? TemplateVariables(ChatOptions? o)
    {
        Dictionary<string, object?>? vars = null;
        if (o?.Reasoning?.Effort is { } effort)
            vars = new()
            {
                ["reasoning_effort"] = effort switch
                {
                    ReasoningEffort.Low => "low",
                    ReasoningEffort.Medium => "medium",
                    ReasoningEffort.High => "high",
                    _ => throw new NotSupportedException($"ChatOptions.Reasoning.Effort {effort}: the chat templates know reasoning_effort {string.Join(", ", ChatTemplateVariables.ReasoningEfforts)} only"),
                },
            };
        if (o?.AdditionalProperties?.TryGetValue(TemplateVariablesKey, out object? kwargs) != true || kwargs == null) return vars;
        vars ??= [];
        switch (kwargs)
        {
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                foreach (var (name, value) in pairs) vars[name] = value;
                break;
            case JsonElement { ValueKind: JsonValueKind.Object } json:
                foreach (var p in json.EnumerateObject()) vars[p.Name] = p.Value.Clone();
                break;
            default:
                throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{TemplateVariablesKey}\"] must be a dictionary of template variables or a JSON object, not {kwargs.GetType().Name}");
        }
        return vars.Count == 0 ? null : vars;
    }

    // Whether the reply carries the model's reasoning: by default and with Output Full; None generates it but leaves it out.
    internal static bool KeepsReasoning(ReasoningOptions? r) => r?.Output switch
    {
        null or ReasoningOutput.Full => true,
        ReasoningOutput.None => false,
        var output => throw new NotSupportedException($"ChatOptions.Reasoning.Output {output}: Daop gives the reasoning whole (Full) or not at all (None)"),
    };

    // split: the reply is split into text, reasoning and function calls as it streams (ReplySplitter), or null: plain text.
    async IAsyncEnumerable<ChatResponseUpdate> Stream(int[] prompt, GenerationSettings settings, ReplySplitter? split, bool keepReasoning,
        [EnumeratorCancellation] CancellationToken cancel)
    {
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        var stats = new GenerationStats();
        int calls = 0;
        ChatResponseUpdate Update(ReplyPart part)
        {
            if (part.Call != null) calls++;
            AIContent content = part.Call != null ? FunctionCall(part.Call) : part.Reasoning != null ? new TextReasoningContent(part.Reasoning) : new TextContent(part.Content);
            return new ChatResponseUpdate(ChatRole.Assistant, [content])
            {
                ResponseId = id, ModelId = _modelId, CreatedAt = created,
            };
        }
        await foreach (string piece in _model.GenerateAsync(prompt, _model.ChatStopTokenIds.ToArray(), settings, stats, cancel).ConfigureAwait(false))
        {
            if (split == null) yield return Update(new ReplyPart(piece, null, null));
            else foreach (var part in split.Push(piece)) if (keepReasoning || part.Reasoning == null) yield return Update(part);
        }
        if (split != null)
            foreach (var part in split.Flush()) if (keepReasoning || part.Reasoning == null) yield return Update(part);
        var usage = new UsageDetails
        {
            InputTokenCount = stats.PromptTokens, OutputTokenCount = stats.GeneratedTokens, TotalTokenCount = stats.PromptTokens + stats.GeneratedTokens,
        };
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
        {
            ResponseId = id, ModelId = _modelId, CreatedAt = created,
            FinishReason = calls > 0 ? ChatFinishReason.ToolCalls
                : stats.Finish is FinishReason.MaxTokens or FinishReason.ContextFull ? ChatFinishReason.Length : ChatFinishReason.Stop,
        };
    }

    // A call's JSON arguments as FunctionCallContent takes them: top-level names to JSON values.
    static FunctionCallContent FunctionCall(Engine.Load.Chat.ToolCall call)
    {
        using var doc = JsonDocument.Parse(call.Arguments);
        var args = new Dictionary<string, object?>();
        foreach (var p in doc.RootElement.EnumerateObject()) args[p.Name] = p.Value.Clone();
        return new FunctionCallContent(call.Id, call.Name, args);
    }

    // Text, the assistant's function calls and the tools' results; roles as the chat templates know them. Each function
    // result becomes a "tool" message of its own (the templates render consecutive ones as one turn).
    static List<DaopMessage> Conversation(IEnumerable<ChatMessage> messages)
    {
        var list = new List<DaopMessage>();
        int i = 0;
        foreach (var m in messages)
        {
            ArgumentNullException.ThrowIfNull(m, $"messages[{i}]");
            var calls = new List<Engine.Load.Chat.ToolCall>();
            var results = new List<FunctionResultContent>();
            var reasoning = new System.Text.StringBuilder();
            foreach (var c in m.Contents)
                switch (c)
                {
                    case TextContent or UsageContent: break;
                    case TextReasoningContent r: reasoning.Append(r.Text); break;
                    case FunctionCallContent call:
                        calls.Add(new Engine.Load.Chat.ToolCall(call.CallId, call.Name,
                            JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(),
                                AIJsonUtilities.DefaultOptions.GetTypeInfo(typeof(IDictionary<string, object?>)))));
                        break;
                    case FunctionResultContent result: results.Add(result); break;
                    default:
                        throw new NotSupportedException($"messages[{i}] holds {c.GetType().Name}: Daop takes text, function calls and function results only (no images or other contents)");
                }
            if (results.Count > 0)
                foreach (var r in results) list.Add(new DaopMessage("tool", ResultText(r.Result)) { ToolCallId = r.CallId });
            else list.Add(new DaopMessage(m.Role.Value, m.Text)
            {
                ToolCalls = calls.Count > 0 ? calls : null, Reasoning = reasoning.Length > 0 ? reasoning.ToString() : null,
            });
            i++;
        }
        if (list.Count == 0) throw new ArgumentException("the conversation has no messages", nameof(messages));
        return list;
    }

    // A function's result as the text the model reads: a string as it is, anything else as JSON.
    static string ResultText(object? result) => result switch
    {
        null => "",
        string s => s,
        JsonElement e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText(),
        _ => JsonSerializer.Serialize(result, AIJsonUtilities.DefaultOptions.GetTypeInfo(result.GetType())),
    };

    // The generation settings and the tools offered (none: not offered, or ToolMode None).
    (GenerationSettings, IReadOnlyList<Engine.Load.Chat.ToolDefinition>) Settings(ChatOptions? o)
    {
        var tools = Tools(o);
        Engine.Load.Chat.ToolDefinition[]? required = o?.ToolMode is RequiredChatToolMode r && tools.Count > 0
            ? r.RequiredFunctionName is { } name ? tools.FirstOrDefault(t => t.Name == name) is { } named ? [named]
                : throw new ArgumentException($"ChatOptions.ToolMode requires the function '{name}', which ChatOptions.Tools does not hold")
            : [.. tools]
            : null;
        // JSON without a schema is a constrained JSON object; with one, a value the schema accepts (GenerationSettings.JsonSchema).
        string? schema = o?.ResponseFormat is ChatResponseFormatJson { Schema: { } js } ? js.GetRawText() : null;
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
            JsonObject = o?.ResponseFormat is ChatResponseFormatJson && schema == null,
            JsonSchema = schema,
            RequiredToolCall = required,
        };
        s.Validate();
        return (s, tools);
    }

    // Function declarations offered to the model; other tools are refused, and so are tools the template cannot carry.
    IReadOnlyList<Engine.Load.Chat.ToolDefinition> Tools(ChatOptions? o)
    {
        if (o?.Tools is not { Count: > 0 } tools || o.ToolMode is NoneChatToolMode) return [];
        var list = new List<Engine.Load.Chat.ToolDefinition>();
        foreach (var tool in tools)
        {
            if (tool is not AIFunctionDeclaration f)
                throw new NotSupportedException($"ChatOptions.Tools holds {tool.GetType().Name} '{tool.Name}': Daop offers function tools only");
            Engine.Load.Chat.ToolDefinition.CheckName(f.Name);
            list.Add(new Engine.Load.Chat.ToolDefinition(f.Name, string.IsNullOrEmpty(f.Description) ? null : f.Description, f.JsonSchema.GetRawText()));
        }
        if (_model.ToolCallFormat == null)
            throw new NotSupportedException($"ChatOptions.Tools: the model's chat template describes no tool-call format Daop parses ({ToolCallFormat.Known})");
        return list;
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
