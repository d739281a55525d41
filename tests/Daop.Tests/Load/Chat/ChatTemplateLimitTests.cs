using Daop.Engine.Api;
using Daop.Engine.Load.Chat;

namespace Daop.Tests.Load.Chat;

/// <summary>
/// Hostile templates (a model folder is untrusted input) end with a ChatTemplateException naming the line instead of
/// overflowing the stack, exhausting memory or running for minutes; a cancelled token stops a render. Before the limits,
/// the recursion and nesting cases killed the test host (stack overflow) and the size cases allocated gigabytes.
/// </summary>
public class ChatTemplateLimitTests
{
    private const int Deep = 50_000;

    private static string ParseError(string template) => Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template)).Message;

    private static string RenderError(string template, ChatTemplateLimits? limits = null)
        => Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template, null, null, limits ?? ChatTemplateLimits.Default).Render([], false)).Message;

    private static string Render(string template, ChatTemplateLimits? limits = null)
        => ChatTemplate.Parse(template, null, null, limits ?? ChatTemplateLimits.Default).Render([], false);

    [Fact]
    public void RecursiveMacro()
    {
        string e = RenderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}");
        Assert.Equal("chat template line 1: macro 'f' is called while 64 macro calls are already in progress (unbounded recursion?)", e);
    }

    [Fact]
    public void MutualRecursion()
    {
        string e = RenderError("{% macro a() %}{{ b() }}{% endmacro %}\n{% macro b() %}\n{{ a() }}{% endmacro %}\n{{ a() }}");
        Assert.StartsWith("chat template line ", e);
        Assert.Contains("64 macro calls are already in progress", e);
    }

    [Fact]
    public void BoundedRecursionStillWorks()
    {
        Assert.Equal("3210", Render("{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"));
    }

    [Theory]
    [InlineData("(", "1", ")")]
    [InlineData("[", "", "]")]
    [InlineData("{'k': ", "1", "}")]
    [InlineData("-", "1", "")]
    [InlineData("not ", "1", "")]
    public void DeeplyNestedExpressionsFailToParse(string open, string inner, string close)
    {
        string template = "\n{{ " + string.Concat(Enumerable.Repeat(open, Deep)) + inner + string.Concat(Enumerable.Repeat(close, Deep)) + " }}";
        Assert.Equal("chat template line 2: the template nests deeper than 256 levels (blocks, brackets and chained operators)", ParseError(template));
    }

    [Fact]
    public void DeeplyNestedBlocksFailToParse()
    {
        string template = "a\n" + string.Concat(Enumerable.Repeat("{% if true %}", Deep)) + "x" + string.Concat(Enumerable.Repeat("{% endif %}", Deep));
        // 1.2 million characters: the default length limit rejects it first, so lift that to reach the nesting limit.
        var limits = ChatTemplateLimits.Default with { MaxTemplateLength = 2 << 20 };
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template, null, null, limits));
        Assert.Equal("chat template line 2: the template nests deeper than 256 levels (blocks, brackets and chained operators)", e.Message);
        Assert.Equal("chat template: the template has 1200003 characters; the limit is 1048576", ParseError(template));
    }

    [Theory]
    [InlineData(" + 1")]
    [InlineData(" ~ 'a'")]
    [InlineData(" and 1")]
    [InlineData("|trim")]
    [InlineData(".x")]
    public void LongOperatorChainsFailToParse(string link)
    {
        // A chain parses in a loop but evaluates recursively, one level per link.
        string e = ParseError("{{ 1" + string.Concat(Enumerable.Repeat(link, Deep)) + " }}");
        Assert.StartsWith("chat template line 1: the template nests deeper than 256 levels", e);
    }

    [Fact]
    public void SmallStackThreadGetsAnErrorNotAStackOverflow()
    {
        // Nesting within the limits can still be too deep for a thread with a small stack: the parser and the
        // interpreter check the remaining stack too (a stack overflow would kill the test host).
        string parens = "{{ " + new string('(', 250) + "1" + new string(')', 250) + " }}";
        string calls = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}";
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                Render(parens);
                Render(calls);
            }
            catch (Exception e)
            {
                error = e;
            }
        }, maxStackSize: 256 * 1024);
        thread.Start();
        thread.Join();
        Assert.True(error is null or ChatTemplateException, error?.ToString());
    }

    [Fact]
    public void NestingWithinTheLimitParses()
    {
        Assert.Equal("1", Render("{{ " + new string('(', 100) + "1" + new string(')', 100) + " }}"));
        var tight = ChatTemplateLimits.Default with { MaxNestingDepth = 8 };
        Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("{{ " + new string('(', 8) + "1" + new string(')', 8) + " }}", null, null, tight));
    }

    [Theory]
    [InlineData("{{ range(10**9)|length }}", "a list of 1000000000 items would exceed the limit of 1048576")]
    [InlineData("{% for i in range(10**18) %}{% endfor %}", "a list of 1000000000000000000 items would exceed the limit of 1048576")]
    [InlineData("{{ ('a' * 10**10)|length }}", "a string of 10000000000 characters would exceed the limit of 8388608")]
    [InlineData("{{ 10**10 * 'ab' }}", "a string of 20000000000 characters would exceed the limit of 8388608")]
    [InlineData("{{ ([1] * 10**9)|length }}", "a list of 1000000000 items would exceed the limit of 1048576")]
    [InlineData("{{ ('ab' * 5 * 10**18)|length }}", "a string of 9223372036854775807 characters would exceed the limit of 8388608")]
    [InlineData("{{ ('x' * 5000000)|replace('x', 'yy') }}", "a string of 10000000 characters would exceed the limit of 8388608")]
    [InlineData("{{ ('x' * 5000000).replace('', 'y') }}", "a string of 10000001 characters would exceed the limit of 8388608")]
    [InlineData("{{ (['x' * 1000] * 10000)|join(',') }}", "a string of 8388999 characters would exceed the limit of 8388608")]
    [InlineData("{{ ','.join(['x' * 1000] * 10000) }}", "a string of 8388999 characters would exceed the limit of 8388608")]
    [InlineData("{{ (',' * 2000000).split(',')|length }}", "a list of 2000001 items would exceed the limit of 1048576")]
    [InlineData("{{ ('x' * 2000000)|list|length }}", "a list of 2000000 items would exceed the limit of 1048576")]
    [InlineData("{{ {'a': 1}|tojson(indent=10**9) }}", "a string of 1000000002 characters would exceed the limit of 8388608")]
    public void BigValuesFailBeforeTheyAreBuilt(string template, string message)
    {
        Assert.Equal("chat template line 1: " + message, RenderError(template));
    }

    [Fact]
    public void NestedLoopsHitTheIterationLimit()
    {
        string e = RenderError("{% for i in range(10**4) %}\n{% for j in range(10**4) %}{% endfor %}{% endfor %}");
        Assert.Equal("chat template line 2: loops ran more than 1000000 iterations in total", e);
    }

    [Fact]
    public void DoublingAStringInALoopHitsTheStringLimit()
    {
        string e = RenderError("{% set ns = namespace(s='x') %}\n{% for i in range(64) %}\n{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
        Assert.Equal("chat template line 3: a string of 16777216 characters would exceed the limit of 8388608", e);
    }

    [Fact]
    public void PrintingInALoopHitsTheOutputLimit()
    {
        string e = RenderError("{% for i in range(10**6) %}\n{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}");
        Assert.Equal("chat template line 2: the rendered text exceeds the limit of 8388608 characters", e);
    }

    [Fact]
    public void AppendingInALoopHitsTheAllocationLimit()
    {
        // Each step copies the whole string: quadratic memory traffic from a linear loop.
        var limits = ChatTemplateLimits.Default with { MaxAllocatedBytes = 64 << 20 };
        string e = RenderError("\n{% set ns = namespace(s='') %}{% for i in range(10**5) %}{% set ns.s = ns.s ~ 'xxxxxxxxxx' %}{% endfor %}", limits);
        Assert.Equal("chat template line 2: rendering allocated more than the limit of 64 MiB", e);
    }

    [Fact]
    public void SharedItemsCannotAmplifyPrintedOutput()
    {
        // b is 1000 references to one list of 1000 references to one string: tiny in memory, 10^9 characters printed.
        const string build = "{% set a = ['x' * 1000] * 1000 %}{% set b = [a] * 1000 %}\n";
        Assert.Equal("chat template line 2: a string of 8389440 characters would exceed the limit of 8388608", RenderError(build + "{{ b }}"));
        Assert.StartsWith("chat template line 2: a string of ", RenderError(build + "{{ b|tojson }}"));
        Assert.StartsWith("chat template line 2: a string of ", RenderError(build + "{{ b|string|length }}"));
    }

    [Theory]
    [InlineData("{{ ns.x }}")]
    [InlineData("{{ ns.x|tojson }}")]
    [InlineData("{{ ns.x == ns.y }}")]
    public void DeeplyNestedValuesFailCleanly(string use)
    {
        // Building the value is a loop; printing, serializing and comparing it recurse once per level.
        string template = "{% set ns = namespace(x=[], y=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% set ns.y = [ns.y] %}{% endfor %}\n" + use;
        Assert.Equal("chat template line 2: a value nests deeper than 256 levels (lists or dicts inside each other)", RenderError(template));
    }

    [Fact]
    public void NamespaceHoldingItselfFailsInTojson()
    {
        Assert.StartsWith("chat template line 1: a value nests deeper than 256 levels", RenderError("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}"));
    }

    [Fact]
    public void SlowRenderHitsTheTimeLimit()
    {
        // unique is quadratic: 10^10 comparisons, each cheap, none of them a loop iteration.
        var limits = ChatTemplateLimits.Default with { MaxRenderTime = TimeSpan.FromMilliseconds(200) };
        string e = RenderError("\n{{ range(100000)|unique|length }}", limits);
        Assert.Equal("chat template line 2: rendering took longer than the limit of 0.2 s", e);
    }

    [Fact]
    public void CancelledTokenStopsTheRender()
    {
        // Only the token can stop this render: the time limit is far away. The token is cancelled from a thread of its
        // own (a CancelAfter timer waits for the thread pool, which a loaded CI machine can starve past any limit).
        var template = ChatTemplate.Parse("{{ range(100000)|unique|length }}", null, null,
            ChatTemplateLimits.Default with { MaxRenderTime = TimeSpan.FromMinutes(10) });
        Assert.Throws<OperationCanceledException>(() => template.Render([], false, null, new CancellationToken(canceled: true)));

        using var cts = new CancellationTokenSource();
        var canceller = new Thread(() => { Thread.Sleep(100); cts.Cancel(); }) { IsBackground = true };
        canceller.Start();
        Assert.ThrowsAny<OperationCanceledException>(() => template.Render([], false, null, cts.Token));
        canceller.Join();
    }

    [Theory]
    [InlineData("{{ f(a=1, a=2) }}", "chat template line 1: keyword argument 'a' is given twice")]
    [InlineData("{{ [1]|map('x', x=1, x=2) }}", "chat template line 1: keyword argument 'x' is given twice")]
    [InlineData("\n{{ (-9223372036854775807 - 1)|abs }}", "chat template line 2: OverflowException: Negating the minimum value of a twos complement number is invalid.")]
    public void DotNetExceptionsBecomeTemplateErrors(string template, string message)
    {
        Assert.Equal(message, RenderError(template));
    }

    [Theory]
    [InlineData("\n{{ 99999999999999999999 }}", "chat template line 2: integer literal 99999999999999999999 is out of range (at most 9223372036854775807)")]
    [InlineData("{{ '\\uZZZZ' }}", "chat template line 1: invalid escape '\\uZZZZ' in a string literal")]
    public void BadLiteralsAreParseErrors(string template, string message)
    {
        Assert.Equal(message, ParseError(template));
    }

    [Fact]
    public void TemplateLengthIsLimited()
    {
        var limits = ChatTemplateLimits.Default with { MaxTemplateLength = 100 };
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(new string('x', 101), null, null, limits));
        Assert.Equal("chat template: the template has 101 characters; the limit is 100", e.Message);
    }

    [Fact]
    public void ManyRawBlocksAndAdjacentStringsParseInLinearTime()
    {
        // Each raw block used to copy the rest of the template, and each adjacent literal the text so far.
        const int n = 40_000;
        string raw = string.Concat(Enumerable.Repeat("{% raw %}{{x}}{% endraw %}", n));
        Assert.Equal(n * 5, Render(raw).Length);
        string strings = "{{ " + string.Concat(Enumerable.Repeat("'ab' ", n)) + "}}";
        Assert.Equal(n * 2, Render(strings).Length);
    }

    [Fact]
    public void InvalidLimitsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ChatTemplate.Parse("x", null, null, ChatTemplateLimits.Default with { MaxCallDepth = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChatTemplate.Parse("x", null, null, ChatTemplateLimits.Default with { MaxRenderTime = TimeSpan.Zero }));
    }

    [Fact]
    public void DaopModelPassesItsTokenAndLimitsToTheTemplate()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        ChatMessage[] messages = [new("user", "hi")];
        Assert.Throws<OperationCanceledException>(() => model.ChatTokens(messages, new CancellationToken(canceled: true)));
        Assert.Throws<OperationCanceledException>(() => model.ChatAsync(messages, null, null, new CancellationToken(canceled: true)));
        Assert.NotEmpty(model.ChatTokens(messages));

        using var tight = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ChatTemplateLimits = ChatTemplateLimits.Default with { MaxOutputLength = 10 } });
        var e = Assert.Throws<ChatTemplateException>(() => tight.ChatTokens(messages));
        Assert.Contains("the rendered text exceeds the limit of 10 characters", e.Message);
    }
}
