using System.Text.Encodings.Web;
using System.Text.Json;

namespace Daop.Engine.Generate;

/// <summary>A JSON Schema that <see cref="JsonSchemaGrammar.Compile"/> cannot enforce, naming where and why.</summary>
public sealed class JsonSchemaException(string message) : ArgumentException(message);

/// <summary>
/// A JSON Schema compiled for constrained decoding (<see cref="JsonSchemaConstraint"/>): the subset that decides what
/// text may come next, as OpenAI's structured outputs use it. Supported: <c>type</c> (one or a list), <c>properties</c>,
/// <c>required</c>, <c>additionalProperties</c> (false, true or a schema; default true), <c>items</c>, <c>minItems</c>,
/// <c>maxItems</c>, <c>enum</c> and <c>const</c> of scalars, <c>anyOf</c>/<c>oneOf</c> whose branches start with different
/// characters (e.g. a string or null), <c>$ref</c> to <c>#/$defs/...</c> or <c>#/definitions/...</c> (recursion allowed),
/// and annotations (<c>title</c>, <c>description</c>, <c>default</c>, <c>examples</c>, <c>format</c>, ...). A keyword that
/// constrains values in a way not enforced here (<c>pattern</c>, <c>minLength</c>, <c>minimum</c>, <c>allOf</c>, ...) is
/// refused with <see cref="JsonSchemaException"/>, never ignored.
/// </summary>
public sealed class JsonSchemaGrammar
{
    /// <summary>Most schema nodes one grammar may hold.</summary>
    public const int MaxNodes = 4096;
    /// <summary>Most properties one object schema may name (a 64-bit mask tracks which were seen).</summary>
    public const int MaxProperties = 64;
    /// <summary>Most values one enum may list.</summary>
    public const int MaxEnum = 256;

    internal enum Kind : byte { Object, Array, String, Number, Integer, Literals, AnyOf, Any }

    internal sealed class Node
    {
        public Kind Kind;
        public string[] Names = [];      // Object: property names as they appear between quotes (JSON-escaped)
        public int[] Properties = [];    // Object: their value nodes
        public ulong Required;           // Object: bit i: Names[i] is required
        public int Additional = -1;      // Object: node of other keys' values, or -1 (none allowed)
        public int Items;                // Array: node of the items
        public int MinItems, MaxItems = int.MaxValue;
        public string[] Texts = [];      // Literals: the JSON texts allowed
        public int[] Branches = [];      // AnyOf
        public int First;                // bits of the characters a value can start with (FirstChars)
    }

    static readonly HashSet<string> Annotations =
        ["$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default", "examples", "format", "readOnly", "writeOnly", "deprecated", "strict", "name"];

    internal readonly List<Node> Nodes = [];
    readonly Dictionary<string, int> _refs = [];
    JsonElement _root;

    /// <summary>True when every value of the schema is a JSON object (its first character is always '{').</summary>
    public bool StartsOnlyAsObject => Nodes[Root].First == 1;

    /// <summary>The node of the whole document's value.</summary>
    internal int Root { get; private set; }
    /// <summary>Any JSON value.</summary>
    internal int AnyNode { get; private set; }
    internal int AnyObjectNode { get; private set; }
    internal int AnyArrayNode { get; private set; }
    internal int AnyLiteralNode { get; private set; }

    JsonSchemaGrammar() { }

    /// <summary>Compiles <paramref name="schemaJson"/> (a JSON Schema object, or <c>true</c>).</summary>
    /// <exception cref="JsonSchemaException">The schema is not JSON, or uses a keyword or form not enforced here.</exception>
    public static JsonSchemaGrammar Compile(string schemaJson)
    {
        ArgumentNullException.ThrowIfNull(schemaJson);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(schemaJson, new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new JsonSchemaException($"the schema is not valid JSON: {e.Message}"); }
        using (doc)
        {
            var g = new JsonSchemaGrammar { _root = doc.RootElement };
            g.AnyNode = g.Add(new Node { Kind = Kind.Any });
            g.AnyObjectNode = g.Add(new Node { Kind = Kind.Object, Additional = g.AnyNode });
            g.AnyArrayNode = g.Add(new Node { Kind = Kind.Array, Items = g.AnyNode });
            g.AnyLiteralNode = g.Add(new Node { Kind = Kind.Literals, Texts = ["true", "false", "null"] });
            g.Root = g.Schema(doc.RootElement, "#");
            for (int n = 0; n < g.Nodes.Count; n++) g.Nodes[n].First = g.FirstChars(n, 0);
            return g;
        }
    }

    int Add(Node n)
    {
        if (Nodes.Count == MaxNodes) throw new JsonSchemaException($"the schema needs more than {MaxNodes} nodes");
        Nodes.Add(n);
        return Nodes.Count - 1;
    }

    int Schema(JsonElement s, string at)
    {
        if (s.ValueKind == JsonValueKind.True) return AnyNode;
        if (s.ValueKind != JsonValueKind.Object) throw new JsonSchemaException($"{at}: a schema must be an object or true, got {s.ValueKind}");
        foreach (var p in s.EnumerateObject())
            if (!Annotations.Contains(p.Name) && p.Name is not ("type" or "properties" or "required" or "additionalProperties" or "items" or
                    "minItems" or "maxItems" or "enum" or "const" or "anyOf" or "oneOf" or "$ref"))
                throw new JsonSchemaException($"{at}: the keyword '{p.Name}' is not supported for constrained output");
        if (s.TryGetProperty("$ref", out var r)) return Ref(r, at);
        if (s.TryGetProperty("enum", out var e)) return Literals(e.ValueKind == JsonValueKind.Array ? e.EnumerateArray() : throw new JsonSchemaException($"{at}.enum must be an array"), $"{at}.enum");
        if (s.TryGetProperty("const", out var c)) return Literals([c], $"{at}.const");
        if (s.TryGetProperty("anyOf", out var any) || s.TryGetProperty("oneOf", out any))
        {
            string key = s.TryGetProperty("anyOf", out _) ? "anyOf" : "oneOf";
            if (any.ValueKind != JsonValueKind.Array || any.GetArrayLength() == 0) throw new JsonSchemaException($"{at}.{key} must be a non-empty array");
            return AnyOf([.. any.EnumerateArray().Select((b, i) => Schema(b, $"{at}.{key}[{i}]"))], $"{at}.{key}");
        }
        if (!s.TryGetProperty("type", out var type))
            return s.TryGetProperty("properties", out _) ? Typed(s, "object", at) : s.TryGetProperty("items", out _) ? Typed(s, "array", at) : AnyNode;
        if (type.ValueKind == JsonValueKind.String) return Typed(s, type.GetString()!, at);
        if (type.ValueKind != JsonValueKind.Array || type.GetArrayLength() == 0 || type.EnumerateArray().Any(t => t.ValueKind != JsonValueKind.String))
            throw new JsonSchemaException($"{at}.type must be a type name or a non-empty list of them");
        var types = type.EnumerateArray().Select(t => t.GetString()!).ToArray();
        return types.Length == 1 ? Typed(s, types[0], at) : AnyOf([.. types.Select(t => Typed(s, t, at))], $"{at}.type");
    }

    int Typed(JsonElement s, string type, string at)
    {
        switch (type)
        {
            case "object": return Object(s, at);
            case "array":
                var a = new Node { Kind = Kind.Array };
                int id = Add(a);
                a.Items = s.TryGetProperty("items", out var items) ? Schema(items, $"{at}.items") : AnyNode;
                a.MinItems = Count(s, "minItems", at) ?? 0;
                a.MaxItems = Count(s, "maxItems", at) ?? int.MaxValue;
                if (a.MinItems > a.MaxItems) throw new JsonSchemaException($"{at}: minItems {a.MinItems} is more than maxItems {a.MaxItems}");
                return id;
            case "string": return Add(new Node { Kind = Kind.String });
            case "number": return Add(new Node { Kind = Kind.Number });
            case "integer": return Add(new Node { Kind = Kind.Integer });
            case "boolean": return Add(new Node { Kind = Kind.Literals, Texts = ["true", "false"] });
            case "null": return Add(new Node { Kind = Kind.Literals, Texts = ["null"] });
            default: throw new JsonSchemaException($"{at}.type: '{type}' is not a JSON Schema type");
        }
    }

    int Object(JsonElement s, string at)
    {
        var o = new Node { Kind = Kind.Object };
        int id = Add(o);
        var names = new List<string>();
        var props = new List<int>();
        if (s.TryGetProperty("properties", out var ps))
        {
            if (ps.ValueKind != JsonValueKind.Object) throw new JsonSchemaException($"{at}.properties must be an object");
            foreach (var p in ps.EnumerateObject())
            {
                if (names.Count == MaxProperties) throw new JsonSchemaException($"{at}.properties: more than {MaxProperties} properties");
                names.Add(Escaped(p.Name));
                props.Add(Schema(p.Value, $"{at}.properties.{p.Name}"));
            }
        }
        o.Names = [.. names];
        o.Properties = [.. props];
        o.Additional = !s.TryGetProperty("additionalProperties", out var ap) || ap.ValueKind == JsonValueKind.True ? AnyNode
            : ap.ValueKind == JsonValueKind.False ? -1 : Schema(ap, $"{at}.additionalProperties");
        if (s.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                throw new JsonSchemaException($"{at}.required must be an array of property names");
            foreach (var r in req.EnumerateArray())
            {
                int i = Array.IndexOf(o.Names, Escaped(r.GetString()!));
                if (i < 0) throw new JsonSchemaException($"{at}.required names '{r.GetString()}', which {at}.properties does not define");
                o.Required |= 1UL << i;
            }
        }
        return id;
    }

    int Literals(IEnumerable<JsonElement> values, string at)
    {
        var texts = new List<string>();
        foreach (var v in values)
        {
            if (v.ValueKind is JsonValueKind.Object or JsonValueKind.Array) throw new JsonSchemaException($"{at}: only strings, numbers, booleans and null are supported as values");
            if (texts.Count == MaxEnum) throw new JsonSchemaException($"{at}: more than {MaxEnum} values");
            texts.Add(v.ValueKind == JsonValueKind.String ? "\"" + Escaped(v.GetString()!) + "\"" : v.GetRawText());
        }
        if (texts.Count == 0) throw new JsonSchemaException($"{at}: no value is allowed");
        return Add(new Node { Kind = Kind.Literals, Texts = [.. texts.Distinct()] });
    }

    int AnyOf(int[] branches, string at)
    {
        if (branches.Length == 1) return branches[0];
        int seen = 0;
        foreach (int b in branches)
        {
            int first = FirstChars(b, 0);
            if ((seen & first) != 0)
                throw new JsonSchemaException($"{at}: branches that can start with the same character (two objects, two strings, a number and an integer...) are not supported");
            seen |= first;
        }
        return Add(new Node { Kind = Kind.AnyOf, Branches = branches });
    }

    // Bits of the characters a value of node n can start with: { [ " number t f n.
    int FirstChars(int n, int depth)
    {
        var node = Nodes[n];
        if (depth > 32) throw new JsonSchemaException("anyOf/$ref nesting is too deep");
        return node.Kind switch
        {
            Kind.Object => 1,
            Kind.Array => 2,
            Kind.String => 4,
            Kind.Number or Kind.Integer => 8,
            Kind.Literals => node.Texts.Aggregate(0, (m, t) => m | CharBit(t[0])),
            Kind.AnyOf => node.Branches.Aggregate(0, (m, b) => m | FirstChars(b, depth + 1)),
            _ => 127,
        };
    }

    internal static int CharBit(char c) => c switch
    {
        '{' => 1, '[' => 2, '"' => 4, '-' or (>= '0' and <= '9') => 8, 't' => 16, 'f' => 32, 'n' => 64, _ => 0,
    };

    int Ref(JsonElement r, string at)
    {
        if (r.ValueKind != JsonValueKind.String) throw new JsonSchemaException($"{at}.$ref must be a string");
        string path = r.GetString()!;
        if (_refs.TryGetValue(path, out int known)) return known;
        string[] parts = path.Split('/');
        if (parts.Length != 3 || parts[0] != "#" || parts[1] is not ("$defs" or "definitions"))
            throw new JsonSchemaException($"{at}.$ref: only references to '#/$defs/NAME' or '#/definitions/NAME' are supported, got '{path}'");
        if (!_root.TryGetProperty(parts[1], out var defs) || defs.ValueKind != JsonValueKind.Object || !defs.TryGetProperty(parts[2], out var target))
            throw new JsonSchemaException($"{at}.$ref: '{path}' is not defined");
        // An AnyOf of one branch stands for the target while it compiles, so a recursive reference finds it.
        var slot = new Node { Kind = Kind.AnyOf };
        int id = Add(slot);
        _refs[path] = id;
        slot.Branches = [Schema(target, path)];
        return id;
    }

    static int? Count(JsonElement s, string name, string at)
    {
        if (!s.TryGetProperty(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0) throw new JsonSchemaException($"{at}.{name} must be a non-negative integer");
        return n;
    }

    // A string as it appears between quotes when written plainly (only what JSON requires escaped).
    static string Escaped(string text) => JsonEncodedText.Encode(text, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).ToString();
}
