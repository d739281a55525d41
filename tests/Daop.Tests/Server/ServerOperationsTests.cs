using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Daop.Engine.Api;
using Daop.Engine.Device;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Daop.Server;

namespace Daop.Tests.Server;

/// <summary>
/// Running a server: every response carries an X-Request-Id (the client's when it is a plain token, else a new one) that
/// the log line names, and a generation time limit ends a reply as max_tokens would ("length"), whole or streamed.
/// </summary>
public sealed class ServerOperationsTests(ServerFixture f) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task EveryResponseHasARequestIdThatTheLogNames()
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "health");
        req.Headers.Add("X-Request-Id", "client-42.a_b");
        using var mine = await f.Http.SendAsync(req);
        Assert.Equal("client-42.a_b", mine.Headers.GetValues("X-Request-Id").Single());
        using var bad = new HttpRequestMessage(HttpMethod.Get, "health");
        bad.Headers.TryAddWithoutValidation("X-Request-Id", "evil id\twith spaces");
        using var replaced = await f.Http.SendAsync(bad);
        string id = replaced.Headers.GetValues("X-Request-Id").Single();
        Assert.StartsWith("req-", id);
        using var none = await f.Http.GetAsync("v1/models");
        Assert.NotEqual(id, none.Headers.GetValues("X-Request-Id").Single());
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!f.Log.Any(l => l.StartsWith("client-42.a_b GET /health 200", StringComparison.Ordinal)) && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Contains(f.Log, l => l.StartsWith("client-42.a_b GET /health 200", StringComparison.Ordinal));
    }

    // The embedded model's experts, 3 ms slower per layer call: about 50 tokens a second, whatever the machine.
    sealed class SlowExperts(IExpertScheduler inner) : IExpertScheduler
    {
        public void RunExperts(int layer, DeviceBuffer x, RoutingBatch routing, DeviceBuffer y, int tokens)
        {
            Thread.Sleep(3);
            inner.RunExperts(layer, x, routing, y, tokens);
        }
    }

    [Fact]
    public async Task AGenerationTimeLimitEndsTheReplyAsLength()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions
        {
            Engine = new ModelOptions
            {
                Experts = (m, _) => new SlowExperts(new LocalExpertScheduler(m.Weights, m.Config.HiddenSize, m.Config.NumExperts, m.Config.TopK,
                    m.Config.ExpertIntermediate, m.MaxChunkTokens)),
            },
        });
        await using var server = await DaopServer.StartAsync(model, new DaopServerOptions
        {
            // 3 s: a CI machine busy with the other test collections once streamed fewer than two pieces in 1 s; 3000
            // tokens at the slowed model's ~50 tokens a second still take far longer than the limit.
            Port = 0, MaxGenerationTime = TimeSpan.FromSeconds(3), MaxTokensLimit = 4000,
        });
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        // Far more tokens than 3 s decode, greedy text with no end-of-text for 400 tokens, and a stop sequence that never comes.
        string Body(bool stream) => $$"""{"prompt": "def f():", "max_tokens": 3000, "temperature": 0, "stop": ["\u0001"], "stream": {{(stream ? "true" : "false")}}}""";
        using var whole = await http.PostAsync("v1/completions", new StringContent(Body(false), Encoding.UTF8, "application/json"));
        var json = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement;
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        int tokens = json.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.InRange(tokens, 1, 2999);
        Assert.NotEmpty(choice.GetProperty("text").GetString()!);

        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(Body(true), Encoding.UTF8, "application/json") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        string sse = await resp.Content.ReadAsStringAsync();
        var events = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var finish = JsonDocument.Parse(events[^2]).RootElement.GetProperty("choices")[0].GetProperty("finish_reason");
        Assert.Equal("length", finish.GetString());
        Assert.True(events.Count > 3, "some text before the limit");
    }
}
