using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load.Chat;

namespace Daop.Server;

/// <summary>Fields shared by chat and completion requests, validated.</summary>
sealed record CommonRequest(string? Model, GenerationSettings Settings, bool Stream, bool IncludeUsage, bool MaxTokensGiven, int Choices = 1);

/// <summary>
/// A validated <c>POST /v1/chat/completions</c> body. <paramref name="Tools"/> are the functions offered to the model
/// (none when the request has none or says <c>tool_choice: "none"</c>); the settings carry a forced call
/// (<see cref="GenerationSettings.RequiredToolCall"/>) for <c>"required"</c> or a named function.
/// <paramref name="TemplateVariables"/> are the chat template's own variables the request sets (<c>reasoning_effort</c>,
/// <c>chat_template_kwargs</c>), or null.
/// </summary>
sealed record ChatRequest(CommonRequest Common, IReadOnlyList<ChatMessage> Messages, IReadOnlyList<ToolDefinition> Tools,
    IReadOnlyDictionary<string, object?>? TemplateVariables = null);

/// <summary>A validated <c>POST /v1/completions</c> body: a text prompt or a list of token ids.</summary>
sealed record CompletionRequest(CommonRequest Common, string? PromptText, int[]? PromptTokens, bool Echo);

/// <summary>
/// Reads OpenAI request bodies by hand (no reflection, so it works ahead-of-time compiled) and turns every mistake
/// into a 400 <see cref="ApiException"/> naming the field. Unknown fields are ignored, like most OpenAI-compatible servers.
/// The body must be valid UTF-8 and its strings valid Unicode (no lone surrogate escapes such as <c>"\ud800"</c>), so
/// every string handed on (to the chat template, the tokenizer, stop sequences, error messages) is well formed.
/// </summary>
static class OpenAiRequests
{
    const int MaxDepth = 64;
    static readonly JsonDocumentOptions DocOptions = new() { MaxDepth = MaxDepth };

    /// <summary>Most choices one request may ask for (<c>n</c>): each is a generation of its own.</summary>
    public const int MaxChoices = 16;

    /// <summary>Longest stop sequence, in UTF-16 characters (stop matching holds back up to this much text per token).</summary>
    public const int MaxStopLength = 256;

    /// <summary>Most functions one request may offer (OpenAI's limit), and most calls one assistant message may carry.</summary>
    public const int MaxTools = 128;

    public static ChatRequest ParseChat(byte[] body, DaopServerOptions o, int contextLength, SamplingDefaults defaults)
    {
        using var doc = Parse(body);
        var root = doc.RootElement;
        var common = Common(root, o, contextLength, o.DefaultChatMaxTokens, defaults, chat: true);
        var (tools, required) = Tools(root);
        if (required != null)
        {
            if (common.Settings.JsonObject || common.Settings.JsonSchema != null)
                throw ApiException.Invalid("tool_choice", "a required tool call and a JSON response_format exclude each other");
            common = common with { Settings = common.Settings with { RequiredToolCall = required } };
        }
        if (!root.TryGetProperty("messages", out var msgs) || msgs.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid("messages", "'messages' is a required property", "missing_required_parameter");
        if (msgs.ValueKind != JsonValueKind.Array)
            throw ApiException.Invalid("messages", $"'messages' must be an array of messages, got {Kind(msgs)}", "invalid_type");
        if (msgs.GetArrayLength() == 0)
            throw ApiException.Invalid("messages", "'messages' must contain at least one message", "empty_array");
        if (msgs.GetArrayLength() > o.MaxMessages)
            throw ApiException.Invalid("messages", $"'messages' has {msgs.GetArrayLength()} messages; this server accepts at most {o.MaxMessages}",
                "array_above_max_length");
        var list = new List<ChatMessage>();
        int i = 0;
        foreach (var m in msgs.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object)
                throw ApiException.Invalid(at, $"'{at}' must be an object with 'role' and 'content', got {Kind(m)}", "invalid_type");
            string role = RequiredString(m, "role", at);
            if (role is not ("system" or "user" or "assistant" or "tool" or "developer"))
                throw ApiException.Invalid($"{at}.role", $"'{at}.role' must be one of system, user, assistant, tool, developer; got '{role}'");
            if (role == "developer") role = "system";
            list.Add(new ChatMessage(role, Content(m, at))
            {
                ToolCalls = role == "assistant" ? Calls(m, at) : null,
                ToolCallId = role == "tool" ? OptString(m, "tool_call_id", $"{at}.tool_call_id") : null,
                Name = role == "tool" ? OptString(m, "name", $"{at}.name") : null,
                // What the server returned as an assistant's reasoning, sent back (vLLM's name; Ollama's "thinking" too).
                Reasoning = role == "assistant" ? OptString(m, "reasoning_content", $"{at}.reasoning_content") ?? OptString(m, "thinking", $"{at}.thinking") : null,
            });
        }
        return new ChatRequest(common, list, tools, TemplateVariables(root));
    }

    // "reasoning_effort": "low" | "medium" | "high" (OpenAI's field; GPT-OSS's template reads it), then vLLM's
    // "chat_template_kwargs": {name: JSON value}, which wins. Null when the request sets neither.
    static Dictionary<string, object?>? TemplateVariables(JsonElement root)
    {
        Dictionary<string, object?>? vars = null;
        if (OptString(root, "reasoning_effort", "reasoning_effort") is { } effort)
        {
            if (!ChatTemplateVariables.ReasoningEfforts.Contains(effort))
                throw ApiException.Invalid("reasoning_effort", $"'reasoning_effort' must be \"low\", \"medium\" or \"high\", got '{effort}'");
            vars = new() { ["reasoning_effort"] = effort };
        }
        if (!root.TryGetProperty("chat_template_kwargs", out var kw) || kw.ValueKind == JsonValueKind.Null) return vars;
        if (kw.ValueKind != JsonValueKind.Object)
            throw ApiException.Invalid("chat_template_kwargs", $"'chat_template_kwargs' must be an object of template variables, got {Kind(kw)}", "invalid_type");
        vars ??= [];
        foreach (var p in kw.EnumerateObject())
        {
            string at = $"chat_template_kwargs.{(p.Name.Length > 64 ? p.Name[..64] + "..." : p.Name)}";
            if (ChatTemplateVariables.NameProblem(p.Name) is { } problem)
                throw ApiException.Invalid(at, $"'chat_template_kwargs': {problem}");
            vars[p.Name] = p.Value.Clone();   // the document goes away with the parse
            if (vars.Count > ChatTemplateVariables.MaxCount)
                throw ApiException.Invalid("chat_template_kwargs", $"'chat_template_kwargs' sets more than {ChatTemplateVariables.MaxCount} variables", "array_above_max_length");
        }
        return vars.Count == 0 ? null : vars;
    }

    // tools: [{"type": "function", "function": {"name", "description"?, "parameters"?}}], names unique; tool_choice:
    // "none" (tools not offered), "auto" (default with tools), "required", or {"type": "function", "function": {"name"}}.
    // Returns the tools offered and the names a forced call may use (null: not forced).
    static (IReadOnlyList<ToolDefinition> Tools, ToolDefinition[]? Required) Tools(JsonElement root)
    {
        var tools = new List<ToolDefinition>();
        if (root.TryGetProperty("tools", out var t) && t.ValueKind != JsonValueKind.Null)
        {
            if (t.ValueKind != JsonValueKind.Array)
                throw ApiException.Invalid("tools", $"'tools' must be an array of tools, got {Kind(t)}", "invalid_type");
            if (t.GetArrayLength() > MaxTools)
                throw ApiException.Invalid("tools", $"'tools' has {t.GetArrayLength()} tools; at most {MaxTools} are accepted", "array_above_max_length");
            int i = 0;
            foreach (var tool in t.EnumerateArray())
            {
                string at = $"tools[{i++}]";
                if (tool.ValueKind != JsonValueKind.Object)
                    throw ApiException.Invalid(at, $"'{at}' must be an object like {{\"type\": \"function\", \"function\": {{...}}}}, got {Kind(tool)}", "invalid_type");
                string type = RequiredString(tool, "type", at);
                if (type != "function") throw ApiException.Invalid($"{at}.type", $"'{at}.type' must be \"function\", got '{type}'");
                if (!tool.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                    throw ApiException.Invalid($"{at}.function", $"'{at}.function' must be an object with a 'name'", "missing_required_parameter");
                string name = RequiredString(f, "name", $"{at}.function");
                try { ToolDefinition.CheckName(name); }
                catch (ArgumentException e) { throw ApiException.Invalid($"{at}.function.name", $"'{at}.function.name': {e.Message}"); }
                if (tools.Any(x => x.Name == name))
                    throw ApiException.Invalid($"{at}.function.name", $"'{at}.function.name': the function '{name}' is defined twice");
                string? parameters = null;
                if (f.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null)
                    parameters = p.ValueKind == JsonValueKind.Object ? p.GetRawText()
                        : throw ApiException.Invalid($"{at}.function.parameters", $"'{at}.function.parameters' must be a JSON Schema object, got {Kind(p)}", "invalid_type");
                tools.Add(new ToolDefinition(name, OptString(f, "description", $"{at}.function.description"), parameters));
            }
        }
        if (!root.TryGetProperty("tool_choice", out var c) || c.ValueKind == JsonValueKind.Null)
            return (tools, null);
        if (c.ValueKind == JsonValueKind.String && c.ValueEquals("none")) return ([], null);
        if (tools.Count == 0)
            throw ApiException.Invalid("tool_choice", $"'tool_choice' is {Short(c)} but 'tools' offers no function");
        if (c.ValueKind == JsonValueKind.String)
        {
            if (c.ValueEquals("auto")) return (tools, null);
            if (c.ValueEquals("required")) return (tools, [.. tools]);
            throw ApiException.Invalid("tool_choice", $"'tool_choice' must be \"none\", \"auto\", \"required\" or a function, got {Short(c)}");
        }
        if (c.ValueKind != JsonValueKind.Object || !c.TryGetProperty("function", out var cf) || cf.ValueKind != JsonValueKind.Object)
            throw ApiException.Invalid("tool_choice", $"'tool_choice' must be \"none\", \"auto\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, got {Short(c)}", "invalid_type");
        string chosen = RequiredString(cf, "name", "tool_choice.function");
        return tools.FirstOrDefault(x => x.Name == chosen) is { } named ? (tools, [named])
            : throw ApiException.Invalid("tool_choice.function.name", $"'tool_choice' names the function '{chosen}', which 'tools' does not define");
    }

    // An assistant message's tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]; the arguments
    // are JSON text (an object given as such is taken too). Null when it has none.
    static List<ToolCall>? Calls(JsonElement m, string at)
    {
        if (!m.TryGetProperty("tool_calls", out var tc) || tc.ValueKind == JsonValueKind.Null) return null;
        if (tc.ValueKind != JsonValueKind.Array)
            throw ApiException.Invalid($"{at}.tool_calls", $"'{at}.tool_calls' must be an array, got {Kind(tc)}", "invalid_type");
        if (tc.GetArrayLength() > MaxTools)
            throw ApiException.Invalid($"{at}.tool_calls", $"'{at}.tool_calls' has {tc.GetArrayLength()} calls; at most {MaxTools} are accepted", "array_above_max_length");
        var calls = new List<ToolCall>();
        int i = 0;
        foreach (var call in tc.EnumerateArray())
        {
            string cat = $"{at}.tool_calls[{i++}]";
            if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                throw ApiException.Invalid(cat, $"'{cat}' must be an object with a 'function' object", "invalid_type");
            string name = RequiredString(f, "name", $"{cat}.function");
            string arguments = "{}";
            if (f.TryGetProperty("arguments", out var a) && a.ValueKind != JsonValueKind.Null)
                arguments = a.ValueKind switch
                {
                    JsonValueKind.String => a.GetString()!,
                    JsonValueKind.Object => a.GetRawText(),
                    _ => throw ApiException.Invalid($"{cat}.function.arguments", $"'{cat}.function.arguments' must be a string of JSON, got {Kind(a)}", "invalid_type"),
                };
            calls.Add(new ToolCall(OptString(call, "id", $"{cat}.id") ?? ToolCall.NewId(), name, arguments));
        }
        return calls;
    }

    public static CompletionRequest ParseCompletion(byte[] body, DaopServerOptions o, int contextLength, SamplingDefaults defaults)
    {
        using var doc = Parse(body);
        var root = doc.RootElement;
        var common = Common(root, o, contextLength, o.DefaultCompletionMaxTokens, defaults, chat: false);
        if (!root.TryGetProperty("prompt", out var p) || p.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid("prompt", "'prompt' is a required property", "missing_required_parameter");
        bool echo = Bool(root, "echo") ?? false;
        if (root.TryGetProperty("suffix", out var suffix) && suffix.ValueKind != JsonValueKind.Null)
            throw ApiException.Invalid("suffix", "'suffix' is not supported by this server", "unsupported_parameter");
        if (Int(root, "best_of", 1, 1) is not (null or 1))
            throw ApiException.Invalid("best_of", "only best_of = 1 is supported");
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                return new CompletionRequest(common, p.GetString()!, null, echo);
            case JsonValueKind.Array:
                int n = p.GetArrayLength();
                if (n == 0) throw ApiException.Invalid("prompt", "'prompt' must not be an empty array", "empty_array");
                var first = p[0];
                if (first.ValueKind == JsonValueKind.String)
                {
                    if (n != 1) throw ApiException.Invalid("prompt", "this server completes one prompt per request; send a string or an array of one string");
                    return new CompletionRequest(common, first.GetString()!, null, echo);
                }
                if (first.ValueKind == JsonValueKind.Array)
                    throw ApiException.Invalid("prompt", "this server completes one prompt per request; send one list of token ids");
                var ids = new int[n];
                int k = 0;
                foreach (var t in p.EnumerateArray())
                {
                    if (t.ValueKind != JsonValueKind.Number || !t.TryGetInt32(out int id) || id < 0)
                        throw ApiException.Invalid("prompt", $"'prompt[{k}]' must be a token id (a non-negative integer), got {Short(t)}", "invalid_type");
                    ids[k++] = id;
                }
                return new CompletionRequest(common, null, ids, echo);
            default:
                throw ApiException.Invalid("prompt", $"'prompt' must be a string, an array of one string or an array of token ids, got {Kind(p)}", "invalid_type");
        }
    }

    /// <summary>Most inputs one <c>POST /v1/embeddings</c> request may carry.</summary>
    public const int MaxEmbeddingInputs = 256;

    /// <summary>
    /// A validated <c>POST /v1/embeddings</c> body: <c>input</c> as a string or an array of up to
    /// <see cref="MaxEmbeddingInputs"/> non-empty strings, <c>encoding_format</c> float or base64; <c>dimensions</c>, when
    /// given, must be the model's width (no truncation).
    /// </summary>
    public static (IReadOnlyList<string> Inputs, bool Base64) ParseEmbeddings(byte[] body, int hiddenSize)
    {
        using var doc = Parse(body);
        var root = doc.RootElement;
        if (!root.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid("input", "'input' is a required property", "missing_required_parameter");
        List<string> inputs;
        if (input.ValueKind == JsonValueKind.String) inputs = [input.GetString()!];
        else if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() is > 0 and <= MaxEmbeddingInputs &&
                 input.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String))
            inputs = input.EnumerateArray().Select(x => x.GetString()!).ToList();
        else throw ApiException.Invalid("input", $"'input' must be a string or an array of 1 to {MaxEmbeddingInputs} strings (token-id inputs are not supported), got {Short(input)}", "invalid_type");
        if (inputs.Any(x => x.Length == 0)) throw ApiException.Invalid("input", "inputs must not be empty strings");
        string format = OptString(root, "encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
            throw ApiException.Invalid("encoding_format", $"'encoding_format' must be 'float' or 'base64', got '{format}'");
        if (Int(root, "dimensions", 1, int.MaxValue) is { } dims && dims != hiddenSize)
            throw ApiException.Invalid("dimensions", $"this model's embeddings have {hiddenSize} dimensions; 'dimensions' cannot change that", "unsupported_parameter");
        return (inputs, format == "base64");
    }

    /// <summary>
    /// A validated <c>POST /tokenize</c> body: the text as llama.cpp's <c>content</c> or vLLM's <c>prompt</c>, and whether
    /// the tokenizer's post-processor adds its special tokens (<c>add_special</c> or <c>add_special_tokens</c>; default true).
    /// </summary>
    public static (string Text, bool AddSpecial) ParseTokenize(byte[] body)
    {
        using var doc = Parse(body);
        var root = doc.RootElement;
        string name = root.TryGetProperty("content", out _) ? "content" : "prompt";
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid(name, "'content' (or 'prompt') is a required property", "missing_required_parameter");
        if (v.ValueKind != JsonValueKind.String)
            throw ApiException.Invalid(name, $"'{name}' must be a string, got {Kind(v)}", "invalid_type");
        string text = v.GetString()!;
        bool add = Bool(root, "add_special") ?? Bool(root, "add_special_tokens") ?? true;
        return (text, add);
    }

    /// <summary>A validated <c>POST /detokenize</c> body: <c>tokens</c>, a list of non-negative token ids.</summary>
    public static int[] ParseDetokenize(byte[] body)
    {
        using var doc = Parse(body);
        var root = doc.RootElement;
        if (!root.TryGetProperty("tokens", out var t) || t.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid("tokens", "'tokens' is a required property", "missing_required_parameter");
        if (t.ValueKind != JsonValueKind.Array)
            throw ApiException.Invalid("tokens", $"'tokens' must be an array of token ids, got {Kind(t)}", "invalid_type");
        var ids = new int[t.GetArrayLength()];
        int k = 0;
        foreach (var x in t.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt32(out int id) || id < 0)
                throw ApiException.Invalid("tokens", $"'tokens[{k}]' must be a token id (a non-negative integer), got {Short(x)}", "invalid_type");
            ids[k++] = id;
        }
        return ids;
    }

    static JsonDocument Parse(byte[] body)
    {
        if (body.Length == 0) throw new ApiException(400, "the request body is empty: send a JSON object", code: "invalid_json");
        if (!Utf8.IsValid(body))
        {
            int at = FirstInvalidUtf8(body);
            throw new ApiException(400, $"the request body is not valid UTF-8 (byte 0x{body[at]:X2} at offset {at})", code: "invalid_encoding");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, DocOptions);
        }
        catch (JsonException e)
        {
            throw new ApiException(400, $"the request body is not valid JSON: {e.Message}", code: "invalid_json");
        }
        try
        {
            CheckEscapes(body);
        }
        catch
        {
            doc.Dispose();
            throw;
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            string kind = Kind(doc.RootElement);
            doc.Dispose();
            throw new ApiException(400, $"the request body must be a JSON object, got {kind}", code: "invalid_json");
        }
        return doc;
    }

    static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (OperationStatus.Done == Rune.DecodeFromUtf8(bytes[i..], out _, out int n)) i += n;
        return i;
    }

    // The bytes are valid UTF-8, so only a \u escape can make a string that is not valid Unicode: a surrogate without its
    // pair. System.Text.Json finds those only when a string is read (InvalidOperationException), so look at each escaped one now.
    static void CheckEscapes(byte[] body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = MaxDepth });
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped) continue;
            try
            {
                reader.GetString();
            }
            catch (InvalidOperationException)
            {
                throw new ApiException(400, $"the JSON string at offset {reader.TokenStartIndex} has an unpaired surrogate escape (such as \\ud800): " +
                    "strings must be valid Unicode", code: "invalid_encoding");
            }
        }
    }

    // A value the request leaves out comes from the model's generation_config.json, else OpenAI's default.
    static CommonRequest Common(JsonElement root, DaopServerOptions o, int contextLength, int defaultMaxTokens, SamplingDefaults defaults, bool chat)
    {
        string? model = OptString(root, "model");
        int limit = o.MaxTokensLimit ?? contextLength;
        int? maxTokens = Int(root, "max_tokens", 1, int.MaxValue) ?? Int(root, "max_completion_tokens", 1, int.MaxValue);
        string maxName = root.TryGetProperty("max_tokens", out var mt) && mt.ValueKind != JsonValueKind.Null ? "max_tokens" : "max_completion_tokens";
        if (maxTokens > limit)
            throw ApiException.Invalid(maxName, $"'{maxName}' is {maxTokens}, more than this server allows ({limit})");
        float temperature = (float?)Number(root, "temperature", 0, 2) ?? defaults.Temperature ?? 1f;
        float topP = (float?)Number(root, "top_p", 0, 1) ?? defaults.TopP ?? 1f;
        if (topP == 0) throw ApiException.Invalid("top_p", "'top_p' must be greater than 0");
        int topK = Int(root, "top_k", 0, int.MaxValue) ?? defaults.TopK ?? 0;
        ulong seed = root.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null
            ? s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long sv) ? unchecked((ulong)sv)
                : throw ApiException.Invalid("seed", $"'seed' must be an integer, got {Short(s)}", "invalid_type")
            : 42UL;
        int choices = Int(root, "n", 1, MaxChoices) ?? 1;
        float minP = (float?)Number(root, "min_p", 0, 1) ?? defaults.MinP ?? 0f;
        float frequencyPenalty = (float)(Number(root, "frequency_penalty", -2, 2) ?? 0);
        float presencePenalty = (float)(Number(root, "presence_penalty", -2, 2) ?? 0);
        float repetitionPenalty = (float?)Number(root, "repetition_penalty", 0, 10) ?? defaults.RepetitionPenalty ?? 1f;
        if (repetitionPenalty == 0) throw ApiException.Invalid("repetition_penalty", "'repetition_penalty' must be greater than 0");
        if (!chat) RefuseTools(root);
        var (jsonObject, jsonSchema) = ResponseFormat(root);
        int? topLogprobs = Logprobs(root, chat);
        bool stream = Bool(root, "stream") ?? false;
        bool includeUsage = false;
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object)
                throw ApiException.Invalid("stream_options", $"'stream_options' must be an object, got {Kind(so)}", "invalid_type");
            includeUsage = Bool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        IReadOnlyList<string>? stop = null;
        if (root.TryGetProperty("stop", out var st) && st.ValueKind != JsonValueKind.Null)
        {
            if (st.ValueKind == JsonValueKind.String) stop = [st.GetString()!];
            else if (st.ValueKind == JsonValueKind.Array && st.GetArrayLength() <= 4 &&
                     st.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String))
                stop = st.EnumerateArray().Select(x => x.GetString()!).ToArray();
            else throw ApiException.Invalid("stop", $"'stop' must be a string or an array of up to 4 strings, got {Short(st)}", "invalid_type");
            if (stop.Any(x => x.Length == 0)) throw ApiException.Invalid("stop", "stop sequences must not be empty strings");
            if (stop.FirstOrDefault(x => x.Length > MaxStopLength) is { } tooLong)
                throw ApiException.Invalid("stop", $"a stop sequence is {tooLong.Length} characters long; the limit is {MaxStopLength}");
        }
        var settings = new GenerationSettings
        {
            MaxTokens = Math.Min(maxTokens ?? defaultMaxTokens, limit),
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            Seed = seed,
            Stop = stop,
            MinP = minP,
            FrequencyPenalty = frequencyPenalty,
            PresencePenalty = presencePenalty,
            RepetitionPenalty = repetitionPenalty,
            TopLogprobs = topLogprobs,
            JsonObject = jsonObject,
            JsonSchema = jsonSchema,
        };
        return new CommonRequest(model, settings, stream, includeUsage, maxTokens != null, choices);
    }

    /// <summary>Most alternatives per token a legacy completion's <c>logprobs</c> may ask for (OpenAI's limit).</summary>
    public const int MaxCompletionLogprobs = 5;

    // Chat: "logprobs": true and "top_logprobs": 0..20 (which needs logprobs). Completions: "logprobs": 0..5 alternatives.
    // Null when the request asks for none.
    static int? Logprobs(JsonElement root, bool chat)
    {
        if (!chat) return Int(root, "logprobs", 0, MaxCompletionLogprobs);
        bool on = Bool(root, "logprobs") ?? false;
        int? top = Int(root, "top_logprobs", 0, SamplingOptions.MaxTopLogprobs);
        if (top != null && !on) throw ApiException.Invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        return on ? top ?? 0 : null;
    }

    // Completions have no tool calls (as in OpenAI's API): refused, never ignored, since a client asking for them would
    // otherwise get free text it cannot parse.
    static void RefuseTools(JsonElement root)
    {
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null &&
            !(tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() == 0))
            throw ApiException.Invalid("tools", "tool calls are made through /v1/chat/completions; send this request without 'tools'", "unsupported_parameter");
        if (root.TryGetProperty("tool_choice", out var tc) && tc.ValueKind != JsonValueKind.Null && !(tc.ValueKind == JsonValueKind.String && tc.ValueEquals("none")))
            throw ApiException.Invalid("tool_choice", "tool calls are made through /v1/chat/completions; 'tool_choice' may only be \"none\" here", "unsupported_parameter");
    }

    // response_format: {"type": "text"} (or none) → free text; {"type": "json_object"} → one JSON object;
    // {"type": "json_schema", "json_schema": {"name", "schema", "strict"}} → a value the schema accepts (both by
    // constrained decoding); anything else is refused. Returns (json object?, schema text or null).
    static (bool JsonObject, string? Schema) ResponseFormat(JsonElement root)
    {
        if (!root.TryGetProperty("response_format", out var rf) || rf.ValueKind == JsonValueKind.Null) return (false, null);
        if (rf.ValueKind != JsonValueKind.Object || !rf.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
            throw ApiException.Invalid("response_format", $"'response_format' must be an object with a string 'type', got {Short(rf)}", "invalid_type");
        if (t.ValueEquals("text")) return (false, null);
        if (t.ValueEquals("json_object")) return (true, null);
        if (!t.ValueEquals("json_schema"))
            throw ApiException.Invalid("response_format.type", $"'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", got {Short(t)}");
        if (!rf.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object)
            throw ApiException.Invalid("response_format.json_schema", "'response_format.json_schema' must be an object with a 'schema'", "missing_required_parameter");
        if (!js.TryGetProperty("schema", out var schema) || schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True))
            throw ApiException.Invalid("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON Schema object", "missing_required_parameter");
        string text = schema.GetRawText();
        try { JsonSchemaGrammar.Compile(text); }
        catch (JsonSchemaException e) { throw ApiException.Invalid("response_format.json_schema.schema", $"'response_format.json_schema.schema': {e.Message}", "unsupported_schema"); }
        return (false, text);
    }

    static string Content(JsonElement m, string at)
    {
        if (!m.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null)
        {
            // An assistant turn that only called tools has no content.
            if (m.TryGetProperty("role", out var r) && r.ValueEquals("assistant")) return "";
            throw ApiException.Invalid($"{at}.content", $"'{at}.content' is a required property", "missing_required_parameter");
        }
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array)
            throw ApiException.Invalid($"{at}.content", $"'{at}.content' must be a string or an array of text parts, got {Kind(c)}", "invalid_type");
        var sb = new StringBuilder();
        int i = 0;
        foreach (var part in c.EnumerateArray())
        {
            string pat = $"{at}.content[{i++}]";
            if (part.ValueKind != JsonValueKind.Object)
                throw ApiException.Invalid(pat, $"'{pat}' must be an object like {{\"type\": \"text\", \"text\": \"...\"}}, got {Kind(part)}", "invalid_type");
            string type = RequiredString(part, "type", pat);
            if (type != "text")
                throw ApiException.Invalid($"{pat}.type", $"'{pat}.type' is '{type}': this model reads text only", "unsupported_content");
            sb.Append(RequiredString(part, "text", pat));
        }
        return sb.ToString();
    }

    static string RequiredString(JsonElement o, string name, string at)
    {
        string path = $"{at}.{name}";
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            throw ApiException.Invalid(path, $"'{path}' is a required property", "missing_required_parameter");
        if (v.ValueKind != JsonValueKind.String)
            throw ApiException.Invalid(path, $"'{path}' must be a string, got {Kind(v)}", "invalid_type");
        return v.GetString()!;
    }

    static string? OptString(JsonElement o, string name, string? path = null)
    {
        path ??= name;
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString()
            : throw ApiException.Invalid(path, $"'{path}' must be a string, got {Kind(v)}", "invalid_type");
    }

    static bool? Bool(JsonElement o, string name, string? path = null)
    {
        path ??= name;
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiException.Invalid(path, $"'{path}' must be true or false, got {Short(v)}", "invalid_type"),
        };
    }

    static int? Int(JsonElement o, string name, int min, int max)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw ApiException.Invalid(name, $"'{name}' must be an integer, got {Short(v)}", "invalid_type");
        if (!v.TryGetInt64(out long l))
        {
            if (v.TryGetDouble(out double d) && d == Math.Floor(d)) l = d > 0 ? long.MaxValue : long.MinValue;
            else throw ApiException.Invalid(name, $"'{name}' must be an integer, got {Short(v)}", "invalid_type");
        }
        if (l < min) throw ApiException.Invalid(name, $"'{name}' must be at least {min}, got {Short(v)}");
        if (l > max) throw ApiException.Invalid(name, $"'{name}' must be at most {max}, got {Short(v)}");
        return (int)l;
    }

    static double? Number(JsonElement o, string name, double min, double max)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
            throw ApiException.Invalid(name, $"'{name}' must be a number, got {Short(v)}", "invalid_type");
        if (d < min || d > max) throw ApiException.Invalid(name, $"'{name}' must be between {min} and {max}, got {Short(v)}");
        return d;
    }

    static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    // A value for a message, cut short so a huge value does not echo back whole.
    static string Short(JsonElement v)
    {
        string raw = v.GetRawText();
        return raw.Length <= 40 ? raw : raw[..37] + "...";
    }
}
