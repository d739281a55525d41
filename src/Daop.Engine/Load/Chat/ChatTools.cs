using System.Text.Json;

namespace Daop.Engine.Load.Chat;

/// <summary>A function the model may call (OpenAI's <c>tools[].function</c>).</summary>
/// <param name="Name">The function's name: 1–64 of a–z, A–Z, 0–9, _ and - (<see cref="CheckName"/>).</param>
/// <param name="Description">What it does, for the model; or null.</param>
/// <param name="Parameters">Its parameters as a JSON Schema object (JSON text), or null.</param>
public sealed record ToolDefinition(string Name, string? Description = null, string? Parameters = null)
{
    /// <summary>Longest function name (OpenAI's limit).</summary>
    public const int MaxNameLength = 64;

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is 1–64 of a–z, A–Z, 0–9, _ and -.</summary>
    public static void CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxNameLength || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            throw new ArgumentException($"a function name must be 1 to {MaxNameLength} of a-z, A-Z, 0-9, _ and -; got '{Short(name)}'");
    }

    static string Short(string s) => s.Length <= 80 ? s : s[..80] + "...";
}

/// <summary>A call the model made: to <see cref="Name"/>, with <see cref="Arguments"/> as JSON text (OpenAI's <c>tool_calls[]</c>).</summary>
/// <param name="Id">The call's id, which the tool's answer quotes (<see cref="ChatMessage.ToolCallId"/>).</param>
/// <param name="Name">The function called.</param>
/// <param name="Arguments">Its arguments: a JSON object, as text.</param>
public sealed record ToolCall(string Id, string Name, string Arguments)
{
    /// <summary>Letters and digits: what Mistral's call ids are made of.</summary>
    const string Alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>Length of Mistral's call ids.</summary>
    public const int MistralIdLength = 9;

    /// <summary>A new call id: <c>call_</c> and 24 random hex digits.</summary>
    public static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];

    /// <summary>A new call id as Mistral's templates require it: 9 random letters and digits.</summary>
    public static string NewMistralId() => System.Security.Cryptography.RandomNumberGenerator.GetString(Alphanumerics, MistralIdLength);

    /// <summary>Whether <paramref name="id"/> is 9 letters and digits, the only ids Mistral's templates accept.</summary>
    public static bool IsMistralId(string id) => id.Length == MistralIdLength && id.All(char.IsAsciiLetterOrDigit);

    /// <summary>
    /// The id Mistral's templates see for <paramref name="id"/>: itself when it is one (<see cref="IsMistralId"/>), else
    /// 9 letters and digits derived from it (e.g. from OpenAI's <c>call_...</c> ids), the same every time, so a call and
    /// the tool result that quotes its id still match.
    /// </summary>
    public static string MistralId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (IsMistralId(id)) return id;
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(id));
        return string.Create(MistralIdLength, hash, (chars, h) =>
        {
            for (int i = 0; i < chars.Length; i++) chars[i] = Alphanumerics[h[i] % Alphanumerics.Length];
        });
    }
}

/// <summary>
/// How the model writes tool calls, read from its chat template: the formats whose calls Daop parses and can force.
/// </summary>
public enum ToolCallSyntax
{
    /// <summary>The template describes no format Daop knows: tools cannot be offered.</summary>
    None,
    /// <summary>
    /// Hermes-style blocks, <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c> (Qwen2.5,
    /// Qwen3, and the Qwen MoE models).
    /// </summary>
    Hermes,
    /// <summary>
    /// Mistral's control token and a JSON array, <c>[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]</c> (tokenizers
    /// v3 to v7: Mistral-7B-Instruct-v0.3, Mixtral-8x22B-Instruct-v0.1, Mistral-Nemo, Mistral-Small up to 3.1). Call ids
    /// are 9 letters and digits, as these templates require.
    /// </summary>
    Mistral,
    /// <summary>
    /// Mistral's control tokens around each call's name, <c>[TOOL_CALLS]name[ARGS]{...}</c> (tokenizers v11 and later:
    /// Mistral-Small-3.2, Magistral, Devstral, Ministral 3). Parsed like <see cref="Mistral"/>, which reads both forms;
    /// a forced call is written in this one.
    /// </summary>
    MistralArgs,
    /// <summary>
    /// OpenAI's harmony format (GPT-OSS): a reply is messages on channels, <c>&lt;|channel|&gt;analysis&lt;|message|&gt;...&lt;|end|&gt;</c>
    /// (reasoning), <c>final</c> (the answer) and <c>commentary</c>, where a call is a message to a function,
    /// <c>&lt;|channel|&gt;commentary to=functions.NAME &lt;|constrain|&gt;json&lt;|message|&gt;{...}&lt;|call|&gt;</c>
    /// (<see cref="Generate.HarmonyReply"/>).
    /// </summary>
    Harmony,
}

/// <summary>Tool definitions and the JSON a chat template sees for them.</summary>
static class ChatToolValues
{
    /// <summary><c>tools</c> as templates expect it: [{"type": "function", "function": {"name", "description", "parameters"}}].</summary>
    public static List<object?> Tools(IReadOnlyList<ToolDefinition> tools) => tools.Select(t =>
    {
        var function = new Dictionary<string, object?> { ["name"] = t.Name };
        if (t.Description != null) function["description"] = t.Description;
        if (t.Parameters != null) function["parameters"] = Json(t.Parameters, $"the parameters of tool '{t.Name}'");
        return (object?)new Dictionary<string, object?> { ["type"] = "function", ["function"] = function };
    }).ToList();

    /// <summary>
    /// A message's <c>tool_calls</c>: [{"id", "type": "function", "function": {"name", "arguments"}}], each id as
    /// <paramref name="id"/> gives it to the template, the arguments as an object when they are one (Qwen2.5's template
    /// prints them with tojson), else as the text given.
    /// </summary>
    public static List<object?> Calls(IReadOnlyList<ToolCall> calls, Func<string, string> id) => calls.Select(c => (object?)new Dictionary<string, object?>
    {
        ["id"] = id(c.Id),
        ["type"] = "function",
        ["function"] = new Dictionary<string, object?> { ["name"] = c.Name, ["arguments"] = ObjectOrText(c.Arguments) },
    }).ToList();

    static object? ObjectOrText(string json)
    {
        try
        {
            return Parsed(json) is Dictionary<string, object?> o ? o : json;
        }
        catch (JsonException)
        {
            return json;
        }
    }

    static object? Json(string json, string what)
    {
        try
        {
            return Parsed(json);
        }
        catch (JsonException e)
        {
            throw new ChatTemplateException($"{what} are not valid JSON: {e.Message}");
        }
    }

    // JSON text as the template's values (objects are dictionaries).
    static object? Parsed(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Jinja.Values.FromClr(doc.RootElement);
    }
}
