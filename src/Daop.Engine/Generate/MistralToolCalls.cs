using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// Tool calls in Mistral's syntaxes (<see cref="ToolCallSyntax.Mistral"/>, <see cref="ToolCallSyntax.MistralArgs"/>):
/// the control token <c>[TOOL_CALLS]</c>, then either a JSON array of calls,
/// <c>[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]</c> (tokenizers v3 to v7; a lone object is read as one call),
/// or one call's name, <c>[ARGS]</c> and its arguments, <c>[TOOL_CALLS]f[ARGS]{...}</c>, repeated per call (v11 and
/// later; <c>[CALL_ID]id</c> may come before <c>[ARGS]</c>). Every format reads both; the block ends where its JSON
/// does. A block that is not calls stays text, as vLLM leaves a reply whose calls do not parse. Call ids are 9 letters
/// and digits, as Mistral's templates require (<see cref="ToolCall.NewMistralId"/>).
/// </summary>
public static class MistralToolCalls
{
    /// <summary>Opens the calls (a control token: decoding must show it, <see cref="ToolCallFormat.Markers"/>).</summary>
    public const string Open = "[TOOL_CALLS]";

    /// <summary>Ends a call's name in the v11 form, before its arguments.</summary>
    public const string Args = "[ARGS]";

    /// <summary>Ends a call's name in some v11 templates, before the call's id.</summary>
    public const string CallId = "[CALL_ID]";

    /// <summary>The JSON-array form as sentencepiece (v3) templates write it: <c>[TOOL_CALLS] [</c>, one space.</summary>
    public static ToolCallFormat Spaced { get; } = new ArrayFormat("[TOOL_CALLS] [");

    /// <summary>The JSON-array form as tekken templates (Mistral-Nemo) write it: <c>[TOOL_CALLS][</c>.</summary>
    public static ToolCallFormat Tight { get; } = new ArrayFormat("[TOOL_CALLS][");

    /// <summary>The <c>[TOOL_CALLS]name[ARGS]{...}</c> form (v11 and later templates).</summary>
    public static ToolCallFormat ArgsForm { get; } = new ArgsFormat();

    /// <summary>
    /// Splits a whole reply in either form (<see cref="ToolCallFormat.Parse"/>): the text outside the calls (trimmed; null
    /// when only calls remain) and the calls in order.
    /// </summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string reply) => Spaced.Parse(reply);

    abstract class MistralFormat : ToolCallFormat
    {
        public override string Open => MistralToolCalls.Open;
        public override IReadOnlyList<string> Markers { get; } = [MistralToolCalls.Open, Args, CallId];
        public override string NewId() => ToolCall.NewMistralId();
        internal override IToolCallBlock NewBlock() => new Block(NewId);
    }

    // A forced call is one object in an array; the model's own "id" member is left out (the parser ignores it).
    sealed class ArrayFormat(string head) : MistralFormat
    {
        public override ToolCallSyntax Syntax => ToolCallSyntax.Mistral;
        public override ForcedCallShape Forced { get; } = new(head + "{\"name\": \"", "\", \"arguments\": ", "}]");
    }

    sealed class ArgsFormat : MistralFormat
    {
        public override ToolCallSyntax Syntax => ToolCallSyntax.MistralArgs;
        public override ForcedCallShape Forced { get; } = new(MistralToolCalls.Open, Args, "");
    }

    /// <summary>
    /// One block after <c>[TOOL_CALLS]</c>: whitespace, then a JSON array or object of calls, or a name, markers and an
    /// arguments object. It ends where its JSON does, or at the first character that fits neither.
    /// </summary>
    sealed class Block(Func<string> newId) : IToolCallBlock
    {
        const int MaxWhitespace = 32; // before the calls: a model must get on with them
        const int MaxIdLength = 64;

        enum Phase : byte { Start, Json, Name, Marker, Id, Arguments, Bad }

        Phase _phase;
        JsonPrefix _json;
        int _start;       // where the JSON, or the name, starts
        int _nameEnd;     // where the name ends
        int _markerStart; // where the marker (or the id) being read starts
        int _argsStart;   // where the arguments start
        bool _done;       // the JSON is whole

        public bool Feed(StringBuilder inside)
        {
            char c = inside[^1];
            int at = inside.Length - 1;
            switch (_phase)
            {
                case Phase.Start:
                    if (c is ' ' or '\n' or '\t' or '\r') return Fail(at >= MaxWhitespace);
                    _start = at;
                    if (c is '[' or '{')
                    {
                        _phase = Phase.Json;
                        _json = JsonPrefix.ObjectOrArray();
                        return Json(c);
                    }
                    _phase = Phase.Name;
                    return Fail(!IsNameChar(c));
                case Phase.Json or Phase.Arguments:
                    return Json(c);
                case Phase.Name:
                    if (c != '[') return Fail(!IsNameChar(c) || at - _start >= ToolDefinition.MaxNameLength);
                    (_phase, _nameEnd, _markerStart) = (Phase.Marker, at, at);
                    return false;
                case Phase.Id:
                    if (c != '[') return Fail(!char.IsAsciiLetterOrDigit(c) || at - _markerStart >= MaxIdLength);
                    (_phase, _markerStart) = (Phase.Marker, at);
                    return false;
                case Phase.Marker:
                    string marker = inside.ToString(_markerStart, at + 1 - _markerStart);
                    if (marker == Args) (_phase, _argsStart) = (Phase.Arguments, at + 1);
                    else if (marker == CallId) (_phase, _markerStart) = (Phase.Id, at + 1);
                    else return Fail(!Args.StartsWith(marker, StringComparison.Ordinal) && !CallId.StartsWith(marker, StringComparison.Ordinal));
                    return false;
                default:
                    return true;
            }
        }

        public List<ToolCall>? Calls(string inside)
        {
            if (!_done) return null;
            if (_phase == Phase.Arguments)
            {
                string args = inside[_argsStart..].Trim();
                using var parsed = ToolCallJson.Document(args);
                return parsed == null ? null : [new ToolCall(newId(), inside[_start.._nameEnd], args)];
            }
            using var doc = ToolCallJson.Document(inside[_start..]);
            if (doc == null) return null;
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object) return ToolCallJson.Call(root, newId()) is { } one ? [one] : null;
            var calls = new List<ToolCall>();
            foreach (var element in root.EnumerateArray())
            {
                if (ToolCallJson.Call(element, newId()) is not { } call) return null;
                calls.Add(call);
            }
            return calls.Count > 0 ? calls : null;
        }

        // The JSON read so far: the block ends with it, whole or gone wrong.
        bool Json(char c)
        {
            if (!_json.Feed(c)) return Fail(true);
            _done = _json.IsComplete;
            return _done;
        }

        // Ends the block as text when bad.
        bool Fail(bool bad)
        {
            if (bad) _phase = Phase.Bad;
            return bad;
        }

        static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '-';
    }
}
