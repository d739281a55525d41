using System.Text;
using System.Text.Json;
using Daop.Engine.Generate;

namespace Daop.Tests.Generate;

/// <summary>
/// Constrained JSON output: <see cref="JsonPrefix"/> accepts every prefix of a JSON object and nothing that cannot become
/// one (checked against System.Text.Json on generated documents and random strings); the sampler under a
/// <see cref="JsonObjectConstraint"/> only ever writes such prefixes, whatever the logits favour.
/// </summary>
public class JsonConstraintTests
{
    static bool Accepts(string s, out bool complete)
    {
        var p = new JsonPrefix();
        complete = false;
        foreach (char c in s)
            if (!p.Feed(c)) return false;
        complete = p.IsComplete;
        return true;
    }

    [Theory]
    [InlineData("{}")]
    [InlineData(" \n{\"a\": 1}")]
    [InlineData("{\"a\":[1,-2.5e+3,true,false,null,{\"b\":\"x\\u00e9\\n\\\"\"}],\"c\":{},\"d\":[]}")]
    [InlineData("{\"n\" : -0.0E-1 , \"m\":0 ,\"k\":[ 10 , 0.5 ]}")]
    [InlineData("{\"é\": \"ünïcödé ✓\"}")]
    public void EveryPrefixOfAnObjectIsAcceptedAndOnlyTheWholeIsComplete(string doc)
    {
        for (int n = 0; n <= doc.Length; n++)
        {
            Assert.True(Accepts(doc[..n], out bool complete), $"prefix {n} of {doc}");
            Assert.Equal(n == doc.Length, complete);
        }
        Assert.True(Accepts(doc + " \n", out bool after) && after, "whitespace after the object");
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("\"a\"")]
    [InlineData("{\"a\" 1}")]
    [InlineData("{a:1}")]
    [InlineData("{\"a\":01}")]
    [InlineData("{\"a\":1,}")]
    [InlineData("{\"a\":trux")]
    [InlineData("{\"a\":\"\u0001\"}")]
    [InlineData("{\"a\":1}}")]
    [InlineData("{\"a\":1} x")]
    [InlineData("{\"a\":\"\\q\"}")]
    [InlineData("{\"a\":-}")]
    [InlineData("{\"a\":1.}")]
    [InlineData("{\"a\":1e}")]
    [InlineData("{\"a\":\"\\u12g4\"}")]
    [InlineData("{\"a\":[1 2]}")]
    [InlineData("{\"a\":1]")]
    public void WhatCannotBecomeAnObjectIsRejected(string s) => Assert.False(Accepts(s, out _), s);

    [Fact]
    public void NestingAndWhitespaceAreBounded()
    {
        string deep = "{\"a\":" + new string('[', JsonPrefix.MaxDepth - 1);
        Assert.True(Accepts(deep, out _));
        Assert.False(Accepts(deep + "[", out _));
        Assert.True(Accepts("{" + new string(' ', JsonPrefix.MaxWhitespace), out _));
        Assert.False(Accepts("{" + new string(' ', JsonPrefix.MaxWhitespace + 1), out _));
        Assert.True(Accepts("{\"a\":\"" + new string(' ', 1000), out _)); // inside a string it is content
    }

    /// <summary>
    /// Random strings over JSON's characters: whatever the recognizer calls a complete object, System.Text.Json parses as
    /// one; and random documents System.Text.Json writes are accepted and complete.
    /// </summary>
    [Fact]
    public void AgreesWithSystemTextJson()
    {
        var rng = new Random(7);
        const string alphabet = "{}[]:,\" \\aeu0123-+.Eftrnlsx";
        int complete = 0;
        for (int i = 0; i < 200_000; i++)
        {
            var sb = new StringBuilder("{");
            int len = rng.Next(1, 12);
            for (int j = 0; j < len; j++) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            string s = sb.ToString();
            if (!Accepts(s, out bool done) || !done) continue;
            complete++;
            using var doc = JsonDocument.Parse(s);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }
        Assert.True(complete > 100, $"only {complete} complete objects drawn");

        for (int i = 0; i < 300; i++)
        {
            string written = JsonSerializer.Serialize(RandomValue(rng, 0, obj: true), new JsonSerializerOptions { WriteIndented = i % 2 == 0 });
            Assert.True(Accepts(written, out bool done) && done, written);
        }
    }

    static object? RandomValue(Random rng, int depth, bool obj = false)
    {
        int kind = obj ? 0 : rng.Next(depth > 3 ? 2 : 0, 7);
        return kind switch
        {
            0 => Enumerable.Range(0, rng.Next(4)).ToDictionary(k => "k" + k + (k % 2 == 0 ? "é\n\"" : ""), _ => RandomValue(rng, depth + 1)),
            1 => Enumerable.Range(0, rng.Next(4)).Select(_ => RandomValue(rng, depth + 1)).ToList(),
            2 => rng.NextDouble() * Math.Pow(10, rng.Next(-30, 30)) * (rng.Next(2) * 2 - 1),
            3 => rng.Next(-1000, 1000),
            4 => "s\t\\" + (char)rng.Next(32, 0x3000),
            5 => rng.Next(2) == 0,
            _ => null,
        };
    }

    /// <summary>
    /// A vocabulary of characters and multi-character pieces with logits that favour what is invalid (letters outside
    /// strings, a closing bracket at the start, the stop token): greedy and sampled output is always a prefix of an object,
    /// the stop token is never picked before it closes, and sampled runs that close parse.
    /// </summary>
    [Fact]
    public void ConstrainedSamplingOnlyWritesJsonObjects()
    {
        string[] vocab = ["", "x", "}", "]", "{", "\"", "a", ":", ",", " ", "1", "-", ".", "[", "true", "null", "\"k\":", "{\"", "\"}", "e5", "\\n", "\\"];
        var bias = new float[vocab.Length];
        bias[0] = 8; bias[1] = 6; bias[2] = 5; bias[3] = 5; // stop token (no text), then invalid letters and closers
        int closed = 0;
        for (int seed = 0; seed < 60; seed++)
        {
            var o = new SamplingOptions { Temperature = seed == 0 ? 0 : 1.5f, Seed = (ulong)seed };
            var sampler = new Sampler(o, vocab.Length);
            var constraint = new JsonObjectConstraint(vocab);
            var rng = new Random(seed);
            var text = new StringBuilder();
            for (int step = 0; step < 400 && !constraint.IsComplete; step++)
            {
                var logits = bias.Select(b => b + (float)rng.NextDouble()).ToArray();
                int t = sampler.Next(logits, constraint);
                Assert.NotEqual(0, t);
                constraint.Accept(t);
                text.Append(vocab[t]);
                Assert.True(Accepts(text.ToString(), out _), text.ToString());
            }
            if (!constraint.IsComplete) continue;
            closed++;
            using var doc = JsonDocument.Parse(text.ToString());
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }
        Assert.True(closed > 10, $"only {closed} of 60 runs closed their object");
    }

    [Fact]
    public void AConstraintThatAllowsNothingIsAnError()
    {
        var sampler = new Sampler(new SamplingOptions(), 3);
        var constraint = new JsonObjectConstraint(["x", "y", ""]);
        Assert.Throws<InvalidOperationException>(() => sampler.Next(new float[] { 1, 2, 3 }, constraint));
    }
}
