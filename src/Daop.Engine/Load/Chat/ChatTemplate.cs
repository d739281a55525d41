using Daop.Engine.Load.Chat.Jinja;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Engine.Load.Chat;

/// <summary>
/// A model's chat template (a Jinja2 program) and the bos/eos strings it may print. Rendered by a
/// built-in interpreter for the Jinja subset that Hugging Face chat templates use, with transformers'
/// settings (trim_blocks and lstrip_blocks on, raise_exception and strftime_now available).
/// The template comes with the model, so parsing and rendering run within <see cref="Limits"/>.
/// </summary>
public sealed class ChatTemplate
{
    private const string JinjaFile = "chat_template.jinja";

    private readonly List<Node> _program;

    private ChatTemplate(string source, string? bosToken, string? eosToken, ChatTemplateLimits? limits)
    {
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
        Limits = (limits ?? ChatTemplateLimits.Default).Validate();
        _program = Parser.Parse(source, Limits);
        ToolCallSyntax = SyntaxOf(source);
        Thinks = source.Contains("<think>", StringComparison.Ordinal) && source.Contains("</think>", StringComparison.Ordinal);
    }

    // The format the template writes assistant calls in: the marker it prints for them.
    private static ToolCallSyntax SyntaxOf(string source) =>
        source.Contains("<|channel|>", StringComparison.Ordinal) && source.Contains("<|call|>", StringComparison.Ordinal) ? ToolCallSyntax.Harmony
        : source.Contains("<tool_call>", StringComparison.Ordinal) ? ToolCallSyntax.Hermes
        : !source.Contains("[TOOL_CALLS]", StringComparison.Ordinal) ? ToolCallSyntax.None
        : source.Contains("[ARGS]", StringComparison.Ordinal) ? ToolCallSyntax.MistralArgs
        : ToolCallSyntax.Mistral;

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Value of the template variable bos_token (tokenizer_config.json), or null.</summary>
    public string? BosToken { get; }

    /// <summary>Value of the template variable eos_token (tokenizer_config.json), or null.</summary>
    public string? EosToken { get; }

    /// <summary>The time <c>strftime_now</c> prints (the local time; tests set a fixed one).</summary>
    internal Func<DateTime> Clock { get; set; } = () => DateTime.Now;

    /// <summary>The bounds this template was parsed with and renders within.</summary>
    public ChatTemplateLimits Limits { get; }

    /// <summary>
    /// Whether the model reasons in <c>&lt;think&gt;...&lt;/think&gt;</c> before its answer (Qwen3), as its template tells by
    /// writing such blocks: a reply that opens with one gives it as reasoning (<see cref="Generate.ReplySplitter"/>).
    /// </summary>
    public bool Thinks { get; }

    /// <summary>How the model writes tool calls, as its template tells (<see cref="ToolCallSyntax.None"/> when it describes no format Daop parses).</summary>
    public ToolCallSyntax ToolCallSyntax { get; }

    /// <summary>
    /// Reads <c>chat_template.jinja</c> (transformers 5 layout) or else the "chat_template" of
    /// <c>tokenizer_config.json</c> (a string, or the entry named "default" of a list). Null when
    /// the folder has neither.
    /// </summary>
    /// <exception cref="ModelLoadException">tokenizer_config.json is not valid.</exception>
    /// <exception cref="ChatTemplateException">The template uses syntax outside the supported subset.</exception>
    public static ChatTemplate? FromDirectory(string modelDir) => FromDirectory(modelDir, ChatTemplateLimits.Default);

    /// <summary>Like <see cref="FromDirectory(string)"/>, with other <paramref name="limits"/> for parsing and rendering.</summary>
    /// <exception cref="ModelLoadException">tokenizer_config.json is not valid.</exception>
    /// <exception cref="ChatTemplateException">The template uses syntax outside the supported subset or breaks a limit.</exception>
    public static ChatTemplate? FromDirectory(string modelDir, ChatTemplateLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var config = TokenizerConfig.FromDirectory(modelDir);
        string jinjaPath = Path.Combine(modelDir, JinjaFile);
        string? source = File.Exists(jinjaPath) ? ReadTemplate(jinjaPath, limits) : config?.ChatTemplate;
        return source == null ? null : new ChatTemplate(source, config?.BosToken, config?.EosToken, limits);
    }

    // A template bigger than the limit is not read into memory at all.
    private static string ReadTemplate(string path, ChatTemplateLimits limits)
    {
        // The size of the opened file (hub snapshots are links); UTF-8 takes at most 4 bytes a character.
        byte[] bytes;
        try { bytes = ModelFiles.ReadAll(path, 4L * limits.MaxTemplateLength); }
        catch (ModelLoadException e) { throw new ChatTemplateException($"{JinjaFile}: {e.Message} (the template limit is {limits.MaxTemplateLength} characters)"); }
        return new System.Text.UTF8Encoding(false).GetString(JsonText.SkipBom(bytes).Span);
    }

    /// <summary>Compiles template text directly (tests, or templates that do not come from a model folder).</summary>
    /// <exception cref="ChatTemplateException">The template uses syntax outside the supported subset.</exception>
    public static ChatTemplate Parse(string source, string? bosToken = null, string? eosToken = null)
        => new(source ?? throw new ArgumentNullException(nameof(source)), bosToken, eosToken, null);

    /// <summary>Like <see cref="Parse(string, string?, string?)"/>, with other <paramref name="limits"/> for parsing and rendering.</summary>
    /// <exception cref="ChatTemplateException">The template uses syntax outside the supported subset or breaks a limit.</exception>
    public static ChatTemplate Parse(string source, string? bosToken, string? eosToken, ChatTemplateLimits limits)
        => new(source ?? throw new ArgumentNullException(nameof(source)), bosToken, eosToken,
            limits ?? throw new ArgumentNullException(nameof(limits)));

    /// <summary>
    /// Renders the conversation. The template sees <c>messages</c> (role/content dicts),
    /// <c>add_generation_prompt</c>, <c>bos_token</c>/<c>eos_token</c> when known, <c>tools</c> and
    /// <c>documents</c> as None (like transformers), then <paramref name="variables"/>, which win
    /// (e.g. <c>enable_thinking</c> for Qwen3, or a <c>tools</c> list).
    /// </summary>
    /// <exception cref="ChatTemplateException">The template failed, including its own raise_exception(message), or broke a limit.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables = null)
        => Render(messages, addGenerationPrompt, variables, CancellationToken.None);

    /// <summary>
    /// Like <see cref="Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?}?)"/>, stopping when
    /// <paramref name="cancellationToken"/> is cancelled (e.g. the client of a server request went away).
    /// </summary>
    /// <exception cref="ChatTemplateException">The template failed, including its own raise_exception(message), or broke a limit.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var globals = new Scope(null);
        Globals.AddTo(globals, Clock);
        globals.Set("messages", messages.Select(Message).ToList());
        globals.Set("add_generation_prompt", addGenerationPrompt);
        globals.Set("tools", null);
        globals.Set("documents", null);
        if (BosToken != null)
            globals.Set("bos_token", BosToken);
        if (EosToken != null)
            globals.Set("eos_token", EosToken);
        if (variables != null)
            foreach (var (name, value) in variables)
                globals.Set(name, Values.FromClr(value));
        return Interpreter.Render(_program, globals, new RenderGuard(Limits, cancellationToken));
    }

    /// <summary>
    /// Like <see cref="Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?}?, CancellationToken)"/>
    /// with <paramref name="tools"/> offered to the model (the template's <c>tools</c>, as transformers passes them).
    /// </summary>
    /// <exception cref="ChatTemplateException">The template failed or broke a limit, or a tool's parameters are not JSON.</exception>
    public string RenderWithTools(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ToolDefinition> tools,
        CancellationToken cancellationToken = default) => RenderWithTools(messages, addGenerationPrompt, tools, null, cancellationToken);

    /// <summary>
    /// Like <see cref="RenderWithTools(IReadOnlyList{ChatMessage}, bool, IReadOnlyList{ToolDefinition}, CancellationToken)"/>
    /// with the template's own <paramref name="variables"/> too (e.g. <c>reasoning_effort</c> for GPT-OSS,
    /// <c>enable_thinking</c> for Qwen3); the tools win over a variable named <c>tools</c>.
    /// </summary>
    /// <exception cref="ChatTemplateException">The template failed or broke a limit, or a tool's parameters are not JSON.</exception>
    public string RenderWithTools(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ToolDefinition> tools,
        IReadOnlyDictionary<string, object?>? variables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tools);
        if (tools.Count == 0) return Render(messages, addGenerationPrompt, variables, cancellationToken);
        var all = variables == null ? [] : new Dictionary<string, object?>(variables);
        all["tools"] = ChatToolValues.Tools(tools);
        return Render(messages, addGenerationPrompt, all, cancellationToken);
    }

    // A call id as the template sees it: Mistral's templates raise an error unless it is 9 letters and digits, so other
    // ids (OpenAI's call_..., or a client's own) are mapped to such ones, the same way in a call and in its result.
    private string CallId(string id) => ToolCallSyntax is ToolCallSyntax.Mistral or ToolCallSyntax.MistralArgs ? ToolCall.MistralId(id) : id;

    // {role, content} plus, when present, tool_calls and reasoning_content/thinking (assistant), tool_call_id and name (tool).
    private object? Message(ChatMessage m)
    {
        var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
        if (m.ToolCalls is { Count: > 0 } calls) d["tool_calls"] = ChatToolValues.Calls(calls, CallId);
        if (m.ToolCallId != null) d["tool_call_id"] = CallId(m.ToolCallId);
        if (m.Name != null) d["name"] = m.Name;
        if (m.Reasoning != null) d["reasoning_content"] = d["thinking"] = m.Reasoning;
        return d;
    }
}
