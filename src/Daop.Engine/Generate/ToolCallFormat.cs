using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// How a model writes tool calls (its template's <see cref="ToolCallSyntax"/>): a reply is text with blocks of calls, each
/// opened by <see cref="Open"/>. A format splits a reply into text and calls, whole (<see cref="Parse"/>) or as it
/// streams (<see cref="NewStream"/>), forces one call (<see cref="Constraint"/>), and names the special tokens the
/// reply's text must keep for that (<see cref="Markers"/>).
/// </summary>
public abstract class ToolCallFormat
{
    /// <summary>The format a chat template writes calls in, or null when it describes none Daop knows.</summary>
    public static ToolCallFormat? Of(ChatTemplate? template) => template?.ToolCallSyntax switch
    {
        ToolCallSyntax.Hermes => HermesToolCalls.Format,
        // Tekken templates (Mistral-Nemo) put no space between the marker and the array; sentencepiece ones (v3) do.
        ToolCallSyntax.Mistral => template.Source.Contains("[TOOL_CALLS][", StringComparison.Ordinal) ? MistralToolCalls.Tight : MistralToolCalls.Spaced,
        ToolCallSyntax.MistralArgs => MistralToolCalls.ArgsForm,
        ToolCallSyntax.Harmony => HarmonyToolCalls.Format,
        _ => null,
    };

    /// <summary>The formats Daop reads, in words, for the message that refuses tools to a model whose template has none of them.</summary>
    public const string Known = "Hermes <tool_call> blocks, as Qwen's templates write them, Mistral's [TOOL_CALLS], or GPT-OSS's harmony messages";

    /// <summary>The syntax this format reads.</summary>
    public abstract ToolCallSyntax Syntax { get; }

    /// <summary>What opens a block of calls, e.g. <c>&lt;tool_call&gt;</c> or <c>[TOOL_CALLS]</c>.</summary>
    public abstract string Open { get; }

    /// <summary>
    /// The markers of this format that tokenizers have as special tokens (Mistral's <c>[TOOL_CALLS]</c> and <c>[ARGS]</c>).
    /// Decoding leaves special tokens out of the text, so a reply that is to be parsed must be decoded with these shown
    /// (<see cref="Api.GenerationSettings.KeepToolCallMarkers"/>); a forced call writes them with their own token.
    /// </summary>
    public abstract IReadOnlyList<string> Markers { get; }

    /// <summary>The fixed text of a forced call around the function's name and its arguments.</summary>
    public abstract ForcedCallShape Forced { get; }

    /// <summary>A new id for a parsed call, of the form this format's templates accept.</summary>
    public abstract string NewId();

    /// <summary>A reader for the inside of one block (what follows <see cref="Open"/>).</summary>
    internal abstract IToolCallBlock NewBlock();

    /// <summary>A splitter for one streamed reply.</summary>
    public virtual ToolCallStream NewStream() => new(this);

    /// <summary>
    /// Splits a whole reply into its text (outside the calls, trimmed; null when only calls and whitespace remain) and
    /// its calls, in order, as <see cref="NewStream"/> does.
    /// </summary>
    public (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var stream = NewStream();
        var text = new StringBuilder();
        var calls = new List<ToolCall>();
        foreach (var (piece, call) in stream.Push(reply).Concat(stream.Flush()))
        {
            if (piece != null) text.Append(piece);
            if (call != null) calls.Add(call);
        }
        string content = text.ToString().Trim();
        return (content.Length == 0 && calls.Count > 0 ? null : content, calls);
    }

    /// <summary>
    /// The constrained decoding for OpenAI's <c>tool_choice</c> "required" or a named function: exactly one call in this
    /// format (<see cref="ToolCallConstraint"/>).
    /// </summary>
    /// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
    /// <param name="names">The functions the call may name.</param>
    /// <param name="schemas">For each name, its arguments' grammar, or null for any JSON object; null: any object for every name.</param>
    /// <param name="markerTokens">Token id → the marker of <see cref="Markers"/> it is: these markers are written by their token only.</param>
    public ToolCallConstraint Constraint(IReadOnlyList<string?> tokenTexts, IReadOnlyList<string> names,
        IReadOnlyList<JsonSchemaGrammar?>? schemas = null, IReadOnlyDictionary<int, string>? markerTokens = null)
        => new(tokenTexts, Forced, names, schemas, markerTokens);
}

/// <summary>
/// The text of a forced call: <see cref="Head"/>, a function's name, <see cref="Between"/>, its arguments (a JSON object),
/// <see cref="Tail"/>.
/// </summary>
public sealed record ForcedCallShape(string Head, string Between, string Tail);

/// <summary>Reads the inside of one block of calls, a character at a time (one instance per block).</summary>
internal interface IToolCallBlock
{
    /// <summary>Reads the last character of <paramref name="inside"/> (the block so far); true when the block ends with it.</summary>
    bool Feed(StringBuilder inside);

    /// <summary>
    /// The calls of the block read so far (ended, or cut off by the end of the reply), or null when it is not calls: then
    /// it stays text, its opening marker included.
    /// </summary>
    List<ToolCall>? Calls(string inside);
}

/// <summary>A call as JSON: an object with a string <c>name</c> and an object <c>arguments</c>.</summary>
internal static class ToolCallJson
{
    /// <summary>
    /// The call <paramref name="call"/> describes, or null: <c>arguments</c> may be a JSON text of an object (some
    /// fine-tunes write them so); missing ones are <c>{}</c>; other members (an id the model wrote) are ignored.
    /// </summary>
    public static ToolCall? Call(JsonElement call, string id)
    {
        if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            return null;
        try
        {
            string args = "{}";
            if (call.TryGetProperty("arguments", out var a))
            {
                if (a.ValueKind == JsonValueKind.Object) args = a.GetRawText();
                else if (a.ValueKind == JsonValueKind.String && IsObject(a.GetString()!)) args = a.GetString()!;
                else return null;
            }
            return new ToolCall(id, name.GetString()!, args);
        }
        catch (InvalidOperationException) // a lone surrogate escape in a string
        {
            return null;
        }
    }

    /// <summary>Parses <paramref name="json"/>; null when it is not JSON.</summary>
    public static JsonDocument? Document(string json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    static bool IsObject(string json)
    {
        using var doc = Document(json);
        return doc?.RootElement.ValueKind == JsonValueKind.Object;
    }
}
