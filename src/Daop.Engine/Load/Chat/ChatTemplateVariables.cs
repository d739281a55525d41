namespace Daop.Engine.Load.Chat;

/// <summary>
/// What a caller may set among a chat template's own variables (vLLM's <c>chat_template_kwargs</c>, OpenAI's
/// <c>reasoning_effort</c>): the rules the server, <see cref="Api.DaopModel.ChatTokens(IReadOnlyList{ChatMessage}, IReadOnlyList{ToolDefinition}, IReadOnlyDictionary{string, object?}?, CancellationToken)"/>
/// and the IChatClient share, so each refuses the same names.
/// </summary>
public static class ChatTemplateVariables
{
    /// <summary>Most variables one render may set.</summary>
    public const int MaxCount = 32;

    /// <summary>Longest variable name.</summary>
    public const int MaxNameLength = 64;

    /// <summary>The values of <c>reasoning_effort</c> GPT-OSS's harmony template knows.</summary>
    public static readonly IReadOnlyList<string> ReasoningEfforts = ["low", "medium", "high"];

    // What the renderer sets from the request itself: a caller may not replace the conversation or the tools this way.
    static readonly string[] Rendered = ["messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token"];

    /// <summary>
    /// Why <paramref name="name"/> cannot be set (a sentence naming it), or null when it can: a letter or '_' then
    /// letters, digits or '_', at most <see cref="MaxNameLength"/>, and not one of the names the renderer sets itself.
    /// </summary>
    public static string? NameProblem(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxNameLength || !(char.IsAsciiLetter(name[0]) || name[0] == '_') || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            return $"'{Short(name)}': a template variable's name is a letter or '_' then letters, digits or '_' (at most {MaxNameLength})";
        return Rendered.Contains(name) ? $"'{name}' is set from the conversation itself (messages, tools) and cannot be replaced" : null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first variable <see cref="NameProblem"/> refuses, or when there are more than <see cref="MaxCount"/>.</summary>
    public static void Check(IReadOnlyDictionary<string, object?>? variables)
    {
        if (variables == null) return;
        if (variables.Count > MaxCount)
            throw new ArgumentException($"chat template variables: {variables.Count} set; at most {MaxCount} are accepted");
        foreach (var name in variables.Keys)
            if (NameProblem(name) is { } problem) throw new ArgumentException($"chat template variables: {problem}");
    }

    static string Short(string s) => s.Length <= MaxNameLength ? s : s[..MaxNameLength] + "...";
}
