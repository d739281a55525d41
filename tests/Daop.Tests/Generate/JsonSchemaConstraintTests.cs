using System.Text;
using System.Text.Json;
using Daop.Engine.Generate;

namespace Daop.Tests.Generate;

/// <summary>
/// The JSON Schema recognizer against an independent validator (System.Text.Json's parser plus a direct reading of
/// the schema subset): every prefix of a valid document is accepted and only a valid document is complete; documents
/// mutated at random are complete exactly when the validator accepts them; unsupported keywords are refused.
/// </summary>
public class JsonSchemaConstraintTests
{
    const string Person = """
        {"type": "object", "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "height": {"type": "number"},
            "role": {"enum": ["admin", "user", "a \"quoted\" one"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "boss": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]},
            "ok": {"type": "boolean"},
            "level": {"enum": [1, 12, 2.5, null]}
        }, "required": ["name", "age"], "additionalProperties": false,
        "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}}}
        """;
    const string Open = """{"type": "object", "properties": {"a": {"type": "integer"}, "ab": {"type": "string"}}, "required": ["a"]}""";
    const string List = """{"type": "array", "items": {"type": ["number", "string", "null"]}, "minItems": 1, "maxItems": 4}""";
    const string Tree = """{"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"], "additionalProperties": false}}}""";
    const string Anything = "{}";

    public static TheoryData<string, string, bool> Documents => new()
    {
        { Person, """{"name": "Ada", "age": 36}""", true },
        { Person, """{"age": 36, "name": "Ada", "tags": ["x", "y\n"], "role": "a \"quoted\" one", "ok": false, "level": 12}""", true },
        { Person, """{"name": "Ada", "age": 36, "boss": {"name": "Charles"}, "level": null, "height": -1.5e3}""", true },
        { Person, """{"name": "Ada"}""", false },                              // age required
        { Person, """{"name": "Ada", "age": 3.5}""", false },                  // not an integer
        { Person, """{"name": "Ada", "age": 36, "x": 1}""", false },           // no other keys
        { Person, """{"name": "Ada", "age": 36, "name": "B"}""", false },      // a repeated key
        { Person, """{"name": "Ada", "age": 36, "tags": ["a", "b", "c", "d"]}""", false }, // maxItems
        { Person, """{"name": "Ada", "age": 36, "role": "root"}""", false },   // not in the enum
        { Person, """{"name": "Ada", "age": 36, "level": 1.2}""", false },
        { Person, """{"name": "Ada", "age": 36, "boss": {"name": "C", "age": 1}}""", false },
        { Open, """{"a": 1, "abc": [true, {"x": null}], "ab": "s"}""", true },
        { Open, """{"a": 1, "ab": 2}""", false },
        { Open, """{"ab": "s"}""", false },
        { Open, """{"a": 1, "a": 2}""", false },
        { List, """[1, "two", null, -0.5]""", true },
        { List, "[]", false },
        { List, "[1, 2, 3, 4, 5]", false },
        { List, "[true]", false },
        { Tree, """{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]}""", true },
        { Tree, """{"v": 1, "kids": [{"kids": []}]}""", false },
        { Anything, """[{"a": [1, "b", {"c": null}]}, 2.5e-3, "x"]""", true },
        { Anything, "42", true },
    };

    [Theory]
    [MemberData(nameof(Documents))]
    public void DocumentsAreCompleteExactlyWhenValid(string schema, string document, bool valid)
    {
        var g = JsonSchemaGrammar.Compile(schema);
        Assert.Equal(valid, Validator.Valid(schema, document));
        Assert.Equal(valid, Accepts(g, document));
        if (valid)
        {
            // Every prefix is accepted; the value is complete only at its end; whitespace may follow.
            var p = new JsonSchemaPrefix(g);
            for (int i = 0; i < document.Length; i++)
            {
                Assert.True(p.Feed(g, document[i]), $"refused at {i}: {document[..(i + 1)]}");
                Assert.True(p.IsComplete == (i == document.Length - 1) || char.IsAsciiDigit(document[i]), $"complete at {i}");
            }
            Assert.True(p.Feed(g, ' ') && p.Feed(g, '\n'));
        }
    }

    static bool Accepts(JsonSchemaGrammar g, string text)
    {
        var p = new JsonSchemaPrefix(g);
        foreach (char c in text)
            if (!p.Feed(g, c)) return false;
        if (!p.IsComplete) p.Feed(g, ' '); // a number at the very end closes at the next character
        return p.IsComplete;
    }

    [Theory]
    [InlineData(Person)]
    [InlineData(Open)]
    [InlineData(List)]
    [InlineData(Tree)]
    public void MutatedDocumentsAreCompleteExactlyWhenValid(string schema)
    {
        var g = JsonSchemaGrammar.Compile(schema);
        var seeds = Documents.Where(d => (string)d[0] == schema && (bool)d[2]).Select(d => (string)d[1]).ToArray();
        var rng = new Random(schema.Length);
        const string alphabet = "{}[]\",:0123456789.-eE tfnrulasxy\\";
        int accepted = 0, trials = 0;
        foreach (string seed in seeds)
            for (int t = 0; t < 1500; t++)
            {
                var sb = new StringBuilder(seed);
                for (int k = rng.Next(1, 3); k > 0; k--)
                {
                    int at = rng.Next(sb.Length + 1);
                    switch (rng.Next(3))
                    {
                        case 0: if (at < sb.Length) sb.Remove(at, 1); break;
                        case 1: sb.Insert(at, alphabet[rng.Next(alphabet.Length)]); break;
                        default: if (at < sb.Length) sb[at] = alphabet[rng.Next(alphabet.Length)]; break;
                    }
                }
                string doc = sb.ToString();
                bool valid = Validator.Valid(schema, doc);
                Assert.True(valid == Accepts(g, doc), $"{(valid ? "valid but refused" : "invalid but accepted")}: {doc}");
                trials++;
                if (valid) accepted++;
            }
        Assert.True(accepted > trials / 50, $"only {accepted} of {trials} mutations were valid: the test says little");
    }

    [Theory]
    [InlineData("""{"type": "string", "pattern": "^a"}""", "pattern")]
    [InlineData("""{"type": "string", "minLength": 2}""", "minLength")]
    [InlineData("""{"type": "integer", "minimum": 0}""", "minimum")]
    [InlineData("""{"allOf": [{"type": "string"}]}""", "allOf")]
    [InlineData("""{"type": "object", "properties": {"a": {"type": "date"}}}""", "'date'")]
    [InlineData("""{"anyOf": [{"type": "object"}, {"type": "object", "properties": {"a": true}}]}""", "same character")]
    [InlineData("""{"anyOf": [{"type": "number"}, {"type": "integer"}]}""", "same character")]
    [InlineData("""{"$ref": "#/$defs/missing"}""", "not defined")]
    [InlineData("""{"$ref": "http://example.com/s.json"}""", "only references")]
    [InlineData("""{"type": "object", "required": ["a"], "properties": {}}""", "does not define")]
    [InlineData("""{"enum": [{"a": 1}]}""", "only strings")]
    [InlineData("""{"type": "array", "minItems": 3, "maxItems": 1}""", "minItems")]
    [InlineData("{oops", "not valid JSON")]
    public void UnsupportedSchemasAreRefusedNamingWhy(string schema, string why)
    {
        var e = Assert.Throws<JsonSchemaException>(() => JsonSchemaGrammar.Compile(schema));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void ConstrainedSamplingOnlyWritesValidDocuments()
    {
        string[] vocabulary =
        [
            .. Enumerable.Range(32, 95).Select(c => ((char)c).ToString()), "\n", "{\"", "\": ", ", \"", "\"}", "name", "age", "tags", "[\"",
            "\"]", "boss", "null", "true", "12", "Ada", "admin", "\": \"",
        ];
        var g = JsonSchemaGrammar.Compile(Person);
        var rng = new Random(11);
        int whole = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            var c = new JsonSchemaConstraint(vocabulary, g);
            var text = new StringBuilder();
            for (int step = 0; step < 300 && !c.IsComplete; step++)
            {
                var allowed = Enumerable.Range(0, vocabulary.Length).Where(c.Allows).ToArray();
                Assert.NotEmpty(allowed); // never a dead end
                // Lean towards structure so documents close.
                var structural = allowed.Where(t => vocabulary[t].IndexOfAny(['"', '}', ']', ',', ':']) >= 0).ToArray();
                int pick = structural.Length > 0 && rng.Next(3) > 0 ? structural[rng.Next(structural.Length)] : allowed[rng.Next(allowed.Length)];
                c.Accept(pick);
                text.Append(vocabulary[pick]);
            }
            if (!c.IsComplete) continue;
            whole++;
            Assert.True(Validator.Valid(Person, text.ToString()), text.ToString());
        }
        Assert.True(whole >= 50, $"{whole} of 300 sampled documents closed");
    }

    /// <summary>A direct validator of the subset, over System.Text.Json's parse (no shared code with the recognizer).</summary>
    static class Validator
    {
        public static bool Valid(string schema, string document)
        {
            JsonDocument doc;
            try { doc = JsonDocument.Parse(document); }
            catch (JsonException) { return false; }
            using (doc)
            using (var s = JsonDocument.Parse(schema))
                return Check(s.RootElement, s.RootElement, doc.RootElement);
        }

        static bool Check(JsonElement root, JsonElement s, JsonElement v)
        {
            if (s.TryGetProperty("$ref", out var r))
                return Check(root, root.GetProperty(r.GetString()!.Split('/')[1]).GetProperty(r.GetString()!.Split('/')[2]), v);
            if (s.TryGetProperty("enum", out var e)) return e.EnumerateArray().Any(x => Same(x, v));
            if (s.TryGetProperty("anyOf", out var any)) return any.EnumerateArray().Any(b => Check(root, b, v));
            if (s.TryGetProperty("type", out var t))
            {
                var types = t.ValueKind == JsonValueKind.Array ? t.EnumerateArray().Select(x => x.GetString()!).ToArray() : [t.GetString()!];
                if (!types.Any(x => Is(x, v))) return false;
            }
            if (v.ValueKind == JsonValueKind.Object && (s.TryGetProperty("properties", out _) || s.TryGetProperty("required", out _) || s.TryGetProperty("additionalProperties", out _)))
            {
                var names = v.EnumerateObject().Select(p => p.Name).ToList();
                var props = s.TryGetProperty("properties", out var ps) ? ps : default;
                // A repeated declared property is refused (its value would be read twice); other keys are not tracked.
                if (props.ValueKind == JsonValueKind.Object && names.GroupBy(n => n).Any(k => k.Count() > 1 && props.TryGetProperty(k.Key, out _))) return false;
                foreach (var p in v.EnumerateObject())
                {
                    if (props.ValueKind == JsonValueKind.Object && props.TryGetProperty(p.Name, out var ps1)) { if (!Check(root, ps1, p.Value)) return false; }
                    else if (s.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind == JsonValueKind.False) return false;
                }
                if (s.TryGetProperty("required", out var req) && req.EnumerateArray().Any(n => !names.Contains(n.GetString()!))) return false;
            }
            if (v.ValueKind == JsonValueKind.Array)
            {
                int n = v.GetArrayLength();
                if (s.TryGetProperty("minItems", out var min) && n < min.GetInt32()) return false;
                if (s.TryGetProperty("maxItems", out var max) && n > max.GetInt32()) return false;
                if (s.TryGetProperty("items", out var items) && v.EnumerateArray().Any(x => !Check(root, items, x))) return false;
            }
            return true;
        }

        static bool Is(string type, JsonElement v) => type switch
        {
            "object" => v.ValueKind == JsonValueKind.Object,
            "array" => v.ValueKind == JsonValueKind.Array,
            "string" => v.ValueKind == JsonValueKind.String,
            "number" => v.ValueKind == JsonValueKind.Number,
            "integer" => v.ValueKind == JsonValueKind.Number && v.GetRawText().IndexOfAny(['.', 'e', 'E']) < 0,
            "boolean" => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
            "null" => v.ValueKind == JsonValueKind.Null,
            _ => false,
        };

        // enum: the same JSON value (numbers by their text, as the recognizer compares them).
        static bool Same(JsonElement a, JsonElement b) =>
            a.ValueKind == b.ValueKind && (a.ValueKind == JsonValueKind.String ? a.GetString() == b.GetString() : a.GetRawText() == b.GetRawText());
    }
}
