using System.Text;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// Tool calls in Hermes syntax (<see cref="ToolCallSyntax.Hermes"/>, Qwen's): a reply is text with blocks
/// <c>&lt;tool_call&gt;\n{"name": "f", "arguments": {...}}\n&lt;/tool_call&gt;</c>. A block whose JSON is not a call
/// (an object with a string "name" and an object "arguments") stays in the text, as vLLM's parser leaves it.
/// </summary>
public static class HermesToolCalls
{
    /// <summary>Opens a call.</summary>
    public const string Open = "<tool_call>";

    /// <summary>Closes a call.</summary>
    public const string Close = "</tool_call>";

    /// <summary>The format: blocks as above, ids <c>call_...</c> (<see cref="ToolCall.NewId"/>), no special-token markers.</summary>
    public static ToolCallFormat Format { get; } = new HermesFormat();

    /// <summary>
    /// Splits a whole reply into its text (outside the calls, trimmed; null when only calls and whitespace remain) and
    /// its calls, in order, as <see cref="Stream"/> does. A last block cut off before its closing tag counts when its JSON
    /// is whole.
    /// </summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string reply) => Format.Parse(reply);

    /// <summary>
    /// A call's JSON (the inside of a block), or null when it is not one: an object with a string <c>name</c> and an object
    /// (or a JSON text of one) <c>arguments</c>; missing arguments are <c>{}</c>.
    /// </summary>
    public static ToolCall? ParseCall(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = ToolCallJson.Document(json);
        return doc == null ? null : ToolCallJson.Call(doc.RootElement, ToolCall.NewId());
    }

    /// <summary>
    /// Splits a streamed reply as it comes (<see cref="ToolCallStream"/>). A block's JSON is read as it comes
    /// (<see cref="JsonPrefix"/>), so a closing tag inside one of its strings does not end it; a block that is not a call
    /// ends at its closing tag and goes on as text.
    /// </summary>
    public sealed class Stream() : ToolCallStream(Format);

    sealed class HermesFormat : ToolCallFormat
    {
        public override ToolCallSyntax Syntax => ToolCallSyntax.Hermes;
        public override string Open => HermesToolCalls.Open;
        public override IReadOnlyList<string> Markers => [];
        public override ForcedCallShape Forced { get; } = new(HermesToolCalls.Open + "\n{\"name\": \"", "\", \"arguments\": ", "}\n" + Close);
        public override string NewId() => ToolCall.NewId();
        internal override IToolCallBlock NewBlock() => new Block();
    }

    // One block: a JSON object, whitespace, the closing tag. JSON that goes wrong makes it text up to the next closing tag.
    sealed class Block : IToolCallBlock
    {
        bool _bad;          // the JSON went wrong
        JsonPrefix _json;
        int _jsonEnd = -1;  // where in the block the JSON object closed, or -1

        public bool Feed(StringBuilder inside)
        {
            if (_bad) return ToolCallStream.EndsWith(inside, Close);
            if (_jsonEnd < 0)
            {
                if (!_json.Feed(inside[^1])) _bad = true;
                else if (_json.IsComplete) _jsonEnd = inside.Length;
                return _bad && ToolCallStream.EndsWith(inside, Close);
            }
            // After the object: whitespace, then the closing tag.
            string tail = inside.ToString(_jsonEnd, inside.Length - _jsonEnd).TrimStart();
            if (tail == Close) return true;
            if (!Close.StartsWith(tail, StringComparison.Ordinal)) _bad = true;
            return false;
        }

        public List<ToolCall>? Calls(string inside) => !_bad && _jsonEnd >= 0 && ParseCall(inside[.._jsonEnd]) is { } call ? [call] : null;
    }
}

/// <summary>
/// OpenAI's <c>tool_choice</c> "required" or a named function, in Hermes syntax (<see cref="ToolCallConstraint"/>): the
/// output is exactly one call, <c>&lt;tool_call&gt;\n{"name": "NAME", "arguments": {...}}\n&lt;/tool_call&gt;</c>.
/// </summary>
/// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
/// <param name="names">The functions the call may name (one for a named tool_choice).</param>
/// <param name="schemas">For each name, its arguments' grammar (<see cref="ToolCallConstraint.ArgumentsGrammar"/>), or
/// null for any JSON object; null: any object for every name.</param>
public sealed class HermesToolCallConstraint(IReadOnlyList<string?> tokenTexts, IReadOnlyList<string> names, IReadOnlyList<JsonSchemaGrammar?>? schemas = null)
    : ToolCallConstraint(tokenTexts, HermesToolCalls.Format.Forced, names, schemas);
