using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Daop.Server;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench serve</c>: a bounded load test of the HTTP server. It starts its own server on a free loopback port
/// (127.0.0.1 only), runs N clients that send chat (when the model has a chat template) and completion requests (half of them streamed) back to back for a
/// fixed time, waits for the requests in flight, stops, and prints requests served, throughput and latency percentiles.
/// </summary>
static class LoadTestCommand
{
    static readonly string[] Prompts =
    [
        "def fibonacci(n):", "import os\n", "class Stack:\n    def __init__(self):", "def read_json(path):",
        "for i in range(10):", "# sort a list of tuples by the second item\n", "def main():\n    args =", "try:\n    import numpy as np",
    ];

    public static Command Create()
    {
        var m = new ModelArgs();
        var clients = new Option<int>("--clients", "-c") { Description = "Concurrent clients.", DefaultValueFactory = _ => 32 };
        var seconds = new Option<double>("--seconds") { Description = "How long clients keep sending new requests.", DefaultValueFactory = _ => 30 };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "max_tokens of each request.", DefaultValueFactory = _ => 16 };
        var maxQueue = new Option<int>("--max-queue") { Description = "The server's admission limit (429 beyond).", DefaultValueFactory = _ => 64 };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON object." };
        var parallel = new Option<int>("--parallel", "-np") { Description = "The server's parallel generations (continuous batching; 1 = one at a time).", DefaultValueFactory = _ => 1 };
        var cmd = new Command("serve", "Load-test the HTTP server on loopback: N clients for T seconds; requests served, latency percentiles, errors.")
        {
            clients, seconds, maxTokens, maxQueue, parallel, json,
        };
        m.AddTo(cmd);
        cmd.SetAction((r, cancel) => CliErrors.Run(() => Run(r, m, r.GetValue(clients), r.GetValue(seconds), r.GetValue(maxTokens),
            r.GetValue(maxQueue), r.GetValue(parallel), r.GetValue(json), cancel)));
        return cmd;
    }

    sealed record Sample(double Seconds, double FirstTokenSeconds, bool Stream, bool Chat, int Tokens);

    static async Task<int> Run(ParseResult r, ModelArgs m, int clients, double seconds, int maxTokens, int maxQueue, int parallel, bool json,
        CancellationToken cancel)
    {
        using var model = m.Load(r, quiet: json, parallel);
        await using var server = await DaopServer.StartAsync(model, new DaopServerOptions { Host = "127.0.0.1", Port = 0, MaxQueuedRequests = maxQueue }, cancel);
        // A model without a chat template answers chat requests with 400: its clients send completions only.
        bool withChat = model.Info.HasChatTemplate;
        if (!json)
            Console.WriteLine($"server: {server.BaseAddress} ({model.Info.Name}, {model.Info.Device}, {Environment.ProcessorCount} cores); " +
                $"{clients} clients for {seconds:F0} s, max_tokens {maxTokens}, half streamed, {(withChat ? "half chat" : "completions only (no chat template)")}, " +
                $"{model.Parallel} parallel");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients + 4, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = server.BaseAddress,
            Timeout = TimeSpan.FromSeconds(seconds + 120),
        };
        var samples = new List<Sample>();
        var errors = new Dictionary<string, int>();
        var sw = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(seconds);
        // Requests still in flight at the deadline get this long to finish; then everything is cancelled.
        using var hardStop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        hardStop.CancelAfter(deadline + TimeSpan.FromSeconds(Math.Max(30, seconds)));

        async Task Client(int c)
        {
            var rng = new Random(c);
            for (int i = 0; sw.Elapsed < deadline && !hardStop.IsCancellationRequested; i++)
            {
                bool stream = (i + c) % 2 == 0, chat = withChat && (i / 2 + c) % 2 == 0;
                string prompt = Prompts[rng.Next(Prompts.Length)];
                string outcome;
                try
                {
                    var s = await Send(http, chat, stream, prompt, maxTokens, hardStop.Token);
                    lock (samples) samples.Add(s);
                    continue;
                }
                catch (HttpRequestException e) when (e.StatusCode is { } code)
                {
                    outcome = $"HTTP {(int)code}";
                    if (code == HttpStatusCode.TooManyRequests) await Task.Delay(50, CancellationToken.None);
                }
                catch (OperationCanceledException) when (hardStop.IsCancellationRequested)
                {
                    outcome = "cancelled at the hard stop";
                }
                catch (Exception e) when (e is HttpRequestException or IOException or JsonException or InvalidDataException or TaskCanceledException)
                {
                    outcome = e.GetType().Name;
                }
                lock (errors) errors[outcome] = errors.GetValueOrDefault(outcome) + 1;
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => Client(c), CancellationToken.None)));
        double wall = sw.Elapsed.TotalSeconds;
        Report(samples, errors, wall, clients, model.Parallel, json, server.RequestsServed);
        return 0;
    }

    static async Task<Sample> Send(HttpClient http, bool chat, bool stream, string prompt, int maxTokens, CancellationToken cancel)
    {
        string body = chat
            ? $$"""{"messages":[{"role":"user","content":{{JsonSerializerString(prompt)}}}],"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}},"stream_options":{{(stream ? "{\"include_usage\":true}" : "null")}}}"""
            : $$"""{"prompt":{{JsonSerializerString(prompt)}},"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}},"stream_options":{{(stream ? "{\"include_usage\":true}" : "null")}}}""";
        long t0 = Stopwatch.GetTimestamp();
        using var req = new HttpRequestMessage(HttpMethod.Post, chat ? "v1/chat/completions" : "v1/completions")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cancel);
        if (!resp.IsSuccessStatusCode) throw new HttpRequestException($"HTTP {(int)resp.StatusCode}", null, resp.StatusCode);
        int tokens = 0;
        double first = double.NaN;
        if (stream)
        {
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cancel));
            bool done = false;
            while (await reader.ReadLineAsync(cancel) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]") { done = true; break; }
                using var doc = JsonDocument.Parse(data);
                var root = doc.RootElement;
                if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) tokens = u.GetProperty("completion_tokens").GetInt32();
                var choices = root.GetProperty("choices");
                if (double.IsNaN(first) && choices.GetArrayLength() > 0 &&
                    (chat ? choices[0].GetProperty("delta").TryGetProperty("content", out var c) && c.GetString() is { Length: > 0 }
                          : choices[0].GetProperty("text").GetString() is { Length: > 0 }))
                    first = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
            if (!done) throw new InvalidDataException("the stream ended without data: [DONE]");
        }
        else
        {
            using var doc = JsonDocument.Parse(await resp.Content.ReadAsStreamAsync(cancel));
            tokens = doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        }
        return new Sample(Stopwatch.GetElapsedTime(t0).TotalSeconds, first, stream, chat, tokens);
    }

    static string JsonSerializerString(string s)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer)) w.WriteStringValue(s);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    static void Report(List<Sample> samples, Dictionary<string, int> errors, double wall, int clients, int parallel, bool json, long served)
    {
        var lat = samples.Select(s => s.Seconds * 1000).Order().ToArray();
        var ttft = samples.Where(s => s.Stream && !double.IsNaN(s.FirstTokenSeconds)).Select(s => s.FirstTokenSeconds * 1000).Order().ToArray();
        int tokens = samples.Sum(s => s.Tokens);
        int errorCount = errors.Values.Sum();
        if (json)
        {
            JsonOut.Write(w =>
            {
                w.WriteNumber("clients", clients);
                w.WriteNumber("parallel", parallel);
                w.WriteNumber("seconds", Math.Round(wall, 2));
                w.WriteNumber("requests_ok", samples.Count);
                w.WriteNumber("requests_served_by_server", served);
                w.WriteNumber("requests_per_second", Math.Round(samples.Count / wall, 2));
                w.WriteNumber("tokens_generated", tokens);
                w.WriteNumber("tokens_per_second", Math.Round(tokens / wall, 1));
                foreach (var (name, p) in new[] { ("p50", 50.0), ("p95", 95.0), ("p99", 99.0) })
                    w.WriteNumber($"latency_{name}_ms", Math.Round(Percentile(lat, p), 1));
                if (lat.Length > 0) w.WriteNumber("latency_max_ms", Math.Round(lat[^1], 1));
                if (ttft.Length > 0) w.WriteNumber("first_token_p50_ms", Math.Round(Percentile(ttft, 50), 1));
                w.WriteNumber("errors", errorCount);
                w.WriteStartObject("errors_by_kind");
                foreach (var (k, v) in errors) w.WriteNumber(k, v);
                w.WriteEndObject();
            });
            return;
        }
        Console.WriteLine($"requests ok    {samples.Count} in {wall:F1} s = {samples.Count / wall:F1} req/s " +
            $"({samples.Count(s => s.Stream)} streamed, {samples.Count(s => s.Chat)} chat); server counted {served}");
        Console.WriteLine($"tokens         {tokens} generated = {tokens / wall:F0} tok/s");
        Console.WriteLine($"latency        p50 {Percentile(lat, 50):F0} ms, p95 {Percentile(lat, 95):F0} ms, p99 {Percentile(lat, 99):F0} ms, max {(lat.Length > 0 ? lat[^1] : double.NaN):F0} ms");
        if (ttft.Length > 0) Console.WriteLine($"first token    p50 {Percentile(ttft, 50):F0} ms, p95 {Percentile(ttft, 95):F0} ms (streamed requests, queueing included)");
        Console.WriteLine($"errors         {errorCount}{(errorCount == 0 ? "" : " (" + string.Join(", ", errors.Select(e => $"{e.Key}: {e.Value}")) + ")")}");
    }
}
