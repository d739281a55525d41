using System.CommandLine;
using Daop.Server;

namespace Daop.Cli;

/// <summary><c>daop serve</c>: the OpenAI-compatible HTTP server (see <see cref="DaopServer"/>) until Ctrl+C.</summary>
static class ServeCommand
{
    public static Command Create()
    {
        var m = new ModelArgs();
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port).", DefaultValueFactory = _ => 8080 };
        var host = new Option<string>("--host") { Description = "Address to listen on (an IP address or localhost). 0.0.0.0 exposes the server to the network.", DefaultValueFactory = _ => "127.0.0.1" };
        var id = new Option<string?>("--model-id") { Description = "Model id shown to clients (default: the model folder's name)." };
        var parallel = new Option<int>("--parallel", "-np")
        {
            Description = "Generations decoded together (continuous batching; one KV cache of the whole context each). 1 = one at a time.",
            DefaultValueFactory = _ => 1,
        };
        var maxQueue = new Option<int>("--max-queue") { Description = "Generation requests admitted at once (running + waiting); more get 429.", DefaultValueFactory = _ => 64 };
        var maxTime = new Option<double?>("--max-generation-seconds")
        {
            Description = "Longest a generation may run, waiting included; then the reply ends as at max_tokens (finish_reason \"length\"). Default: no limit.",
        };
        var maxConnections = new Option<long>("--max-connections") { Description = "Open connections at once (more are closed).", DefaultValueFactory = _ => 512 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body (413 beyond).", DefaultValueFactory = _ => 1L << 20 };
        var maxTokens = new Option<int?>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for (default: the context length)." };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = $"Require 'Authorization: Bearer KEY' on every route but /health (401 otherwise). Default: ${ApiKeyVariable}; " +
                "prefer the variable, as other users of this machine can see command lines.",
        };
        var hosts = new Option<string?>("--allowed-hosts")
        {
            Description = "Host headers accepted besides localhost, 127.0.0.1, [::1] and --host, comma-separated, or * for any (403 otherwise: " +
                "a guard against DNS rebinding). Listening on 0.0.0.0 or :: also accepts any IP address.",
        };
        var cors = new Option<string?>("--cors-origins")
        {
            Description = "Web origins whose pages may call the server (CORS), comma-separated like http://localhost:3000, or * for any. " +
                "Default: none; a request from another origin gets 403.",
        };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No per-request log lines on stderr." };
        var cmd = new Command("serve", "Serve the model over HTTP with an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health).")
        {
            port, host, id, parallel, maxQueue, maxTime, maxConnections, maxBody, maxTokens, apiKey, hosts, cors, quiet,
        };
        m.AddTo(cmd);
        cmd.SetAction((r, cancel) => CliErrors.Run(async () =>
        {
            bool q = r.GetValue(quiet);
            var options = new DaopServerOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                ModelId = r.GetValue(id),
                ApiKey = r.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } env ? env : null),
                AllowedHosts = List(r.GetValue(hosts)),
                CorsOrigins = List(r.GetValue(cors)),
                MaxQueuedRequests = r.GetValue(maxQueue),
                MaxRequestBodyBytes = r.GetValue(maxBody),
                MaxGenerationTime = r.GetValue(maxTime) is { } sec ? TimeSpan.FromSeconds(sec) : null,
                MaxConnections = r.GetValue(maxConnections),
                MaxTokensLimit = r.GetValue(maxTokens),
                Log = q ? null : line => Console.Error.WriteLine($"[daop] {DateTime.Now:HH:mm:ss} {line}"),
            };
            // Before the model loads, which can take minutes: a mistake fails at once, and the warning comes first.
            options.Validate();
            foreach (string warning in options.SecurityWarnings())
                Console.Error.WriteLine($"daop: WARNING: {warning}");
            using var model = m.Load(r, quiet: false, parallel: r.GetValue(parallel));
            await using var server = await DaopServer.StartAsync(model, options, cancel);
            Console.Error.WriteLine($"daop: serving {server.ModelId} ({model.Info.Architecture}, context {model.ContextLength}, {model.Info.Device}" +
                $"{(model.Parallel > 1 ? $", {model.Parallel} parallel" : "")}) on {server.BaseAddress} ({(options.ApiKey != null ? "API key required" : "no API key")}) — " +
                "POST /v1/chat/completions, /v1/completions; GET /v1/models, /health. Ctrl+C stops.");
            try
            {
                await server.WaitForShutdownAsync(cancel);
            }
            catch (OperationCanceledException)
            {
            }
            Console.Error.WriteLine("daop: stopped");
            return 0;
        }));
        return cmd;
    }

    const string ApiKeyVariable = "DAOP_API_KEY";

    static string[] List(string? commaSeparated) =>
        commaSeparated?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
}
