using Daop.Engine.Load.Chat;

namespace Daop.Tests.Load.Chat;

/// <summary>The Jinja subset feature by feature, with the output Jinja2 (trim_blocks, lstrip_blocks) gives.</summary>
public class JinjaFeatureTests
{
    private static string Render(string template, IReadOnlyDictionary<string, object?>? variables = null)
        => ChatTemplate.Parse(template).Render([], addGenerationPrompt: false, variables);

    [Theory]
    [InlineData("a  {{- 'b' -}}  c", "abc")]
    [InlineData("a\n  {%- if true -%}\n  b\n{%- endif %}", "ab")]
    [InlineData("{% if true %}\n  x\n{% endif %}\n", "  x\n")]
    [InlineData("  {% if true %}\n    x\n  {% endif %}\nz", "    x\nz")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    [InlineData("a{# note #}\nb", "ab")]
    [InlineData("a {#- note -#} b", "ab")]
    [InlineData("  {{ 'v' }}\n", "  v")]
    [InlineData("a\r\nb\n\n", "a\nb\n")]
    [InlineData("{% raw %}{{ x }}{% endraw %}", "{{ x }}")]
    public void WhitespaceControlAndBlocks(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
        "1TrueFalse3;2FalseFalse3;3FalseTrue3;")]
    [InlineData("{% for x in 'ab' %}{{ loop.index0 }}{{ x }}{{ loop.revindex }}{% endfor %}", "0a21b1")]
    [InlineData("{% for x in [] %}x{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", "2242")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;")]
    [InlineData("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", "02")]
    [InlineData("{% for x in [1,2,3] %}{{ loop.cycle('a', 'b') }}{% endfor %}", "aba")]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1")]
    [InlineData("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "3")]
    [InlineData("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}", "c")]
    [InlineData("{% set s %}a{{ 1 }}{% endset %}[{{ s }}]", "[a1]")]
    [InlineData("{% set a, b = [1, 2] %}{{ b }}{{ a }}", "21")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
        "Hi Bob! Hi Al?")]
    [InlineData("{% generation %}kept{% endgeneration %}", "kept")]
    public void Statements(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ 2 ** 3 }}", "3 1 -4 3.5 8")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true }}", "a1NoneTrue")]
    [InlineData("{{ 'ab' * 2 }}{{ [1] + [2] }}", "abab[1, 2]")]
    [InlineData("{{ 'x' if false else 'y' }}[{{ 'x' if false }}]", "y[]")]
    [InlineData("{{ 2 in [1,2] }} {{ 'b' not in 'abc' }} {{ 'k' in {'k': 1} }}", "True False True")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}", "True False True True")]
    [InlineData("{{ none or 'd' }} {{ 0 and 1 }} {{ not 0 }} {{ not (1 and 0) }}", "d 0 True True")]
    [InlineData("{{ [1,2,3,4][::-1] }} {{ 'abcdef'[1:4] }} {{ [1,2,3,4,5][-2:] }} {{ [1,2,3,4,5][::2] }}", "[4, 3, 2, 1] bcd [4, 5] [1, 3, 5]")]
    [InlineData("{{ [1,2,3][-1] }}{{ 'xyz'[0] }}[{{ [1][5] }}]", "3x[]")]
    [InlineData("{{ {'a': 'b', 'c': [1, 'd']} }}", "{'a': 'b', 'c': [1, 'd']}")]
    [InlineData("{{ (1, 2) }} {{ (1,) }} {{ {'a': 1}.items() | list }} {{ (1, 2) == [1, 2] }} {{ \"it's\" }}", "(1, 2) (1,) [('a', 1)] False it's")]
    [InlineData("{{ 0.1 }} {{ 2.0 }} {{ 1e-5 }} {{ 3 / 4 }}", "0.1 2.0 1e-05 0.75")]
    [InlineData("{% set m = {'role': 'user'} %}{{ m.role }}{{ m['role'] }}{{ m.get('x', 'dflt') }}", "useruserdflt")]
    [InlineData("[{{ nothing }}][{{ {'a': 1}.b }}][{{ {'a': 1}['b'] }}][{{ [1][3] }}][{{ none.x }}][{% if nothing %}t{% else %}f{% endif %}]", "[][][][][][f]")]
    [InlineData("{{ 'a' in nothing }}|{{ nothing | length }}|{{ nothing | default('d') }}|{{ nothing == nothing }}|{{ nothing ~ 'x' }}", "False|0|d|True|x")]
    [InlineData("{{ nothing | list }}|{{ not nothing }}|{{ nothing or 'z' }}|{{ nothing is string }}|{% for x in nothing %}x{% endfor %}", "[]|True|z|False|")]
    public void Expressions(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ 1 is string }} {{ x is not defined }}", "False True True False True")]
    [InlineData("{{ false is false }} {{ 0 is false }} {{ true is true }} {{ 3 is odd }} {{ 4 is divisibleby 2 }}", "True False True True True")]
    [InlineData("{{ {} is mapping }} {{ [] is iterable }} {{ 1 is number }} {{ 'a' is equalto 'a' }}", "True True True True")]
    public void Tests(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ '  hi  ' | trim }}|{{ [1,2] | length }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}", "hi|2|ABab")]
    [InlineData("{{ x | default('d') }}|{{ '' | default('e', true) }}|{{ 'v' | d('f') }}", "d|e|v")]
    [InlineData("{{ [1,2,3] | first }}{{ [1,2,3] | last }}|{{ ['a','b'] | join(', ') }}|{{ 'héllo' | length }}", "13|a, b|5")]
    [InlineData("{{ [3,1,2] | sort }}{{ [1,2] | reverse | list }}{{ '12' | int + 1 }}{{ 'x' | capitalize }}", "[1, 2, 3][2, 1]13X")]
    [InlineData("{{ [{'r': 'a'}, {'r': 'b'}] | selectattr('r', 'equalto', 'b') | map(attribute='r') | join }}", "b")]
    [InlineData("{{ [{'r': 'a'}, {'r': 'b'}] | rejectattr('r', 'equalto', 'b') | list | length }}", "1")]
    [InlineData("{{ {'a': [1, 2.5, true, none], 'b': 'é\"\n'} | tojson }}", "{\"a\": [1, 2.5, true, null], \"b\": \"é\\\"\\n\"}")]
    [InlineData("{{ {'a': 1, 'b': [1], 'c': {}} | tojson(indent=2) }}", "{\n  \"a\": 1,\n  \"b\": [\n    1\n  ],\n  \"c\": {}\n}")]
    [InlineData("{{ 'a' | tojson }}{{ 'é' | tojson(ensure_ascii=true) }}", "\"a\"\"\\u00e9\"")]
    public void Filters(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Theory]
    [InlineData("{{ 'a,b,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }}", "['a', 'b', 'c'] ['a', 'b'] ['a', 'b,c']")]
    [InlineData("{{ '  x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\nhi'.lstrip('\\n') }}|{{ 'hi\\n\\n'.rstrip() }}", "x|hi|hi|hi")]
    [InlineData("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}", "TrueTrueTrue")]
    [InlineData("{{ 'aXbX'.replace('X', '-') }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'ab'.title() }}|{{ '-'.join(['a', 'b']) }}", "a-b-|HIhi|Ab|a-b")]
    [InlineData("{{ 'a</think>b</think>c'.split('</think>')[-1] }}{{ 'x<think>y'.split('<think>')[0] }}", "cx")]
    public void StringMethods(string template, string expected)
    {
        Assert.Equal(expected, Render(template));
    }

    [Fact]
    public void VariablesAreConvertedFromDotNetValues()
    {
        var vars = new Dictionary<string, object?>
        {
            ["n"] = 3,
            ["f"] = 0.5f,
            ["items"] = new[] { "a", "b" },
            ["map"] = new Dictionary<string, object?> { ["k"] = true },
            ["json"] = System.Text.Json.JsonDocument.Parse("{\"x\": [1, \"y\"]}").RootElement,
        };
        Assert.Equal("4 0.5 b True [1, 'y']", Render("{{ n + 1 }} {{ f }} {{ items[1] }} {{ map.k }} {{ json.x }}", vars));
    }

    [Fact]
    public void StrftimeNowFormatsTheDate()
    {
        string year = DateTime.Now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.EndsWith(year, Render("{{ strftime_now('%d %b %Y') }}"));
    }
}
