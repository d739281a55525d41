using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Tests.Load.Tokenizer;

namespace Daop.Tests.Load.Chat;

/// <summary>Unsupported syntax and failing templates raise ChatTemplateException naming the construct and line.</summary>
public class ChatTemplateErrorTests
{
    private static string ParseError(string template) => Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template)).Message;

    private static string RenderError(string template)
        => Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template).Render([], false)).Message;

    [Fact]
    public void UnsupportedTagNamesTagAndLine()
    {
        Assert.Equal("chat template line 2: unsupported tag 'include'", ParseError("hello\n{% include 'other.jinja' %}"));
    }

    [Theory]
    [InlineData("{% extends 'base' %}", "chat template line 1: unsupported tag 'extends'")]
    [InlineData("a\nb\n{{ x | wordwrap }}", "chat template line 3: unsupported filter 'wordwrap'")]
    [InlineData("{% if x is prime %}{% endif %}", "chat template line 1: unsupported test 'prime'")]
    [InlineData("{% for x in y recursive %}{% endfor %}", "chat template line 1: unsupported construct 'recursive' loop")]
    [InlineData("{% if x %}\nabc", "chat template line 2: missing 'endif' before the end of the template")]
    [InlineData("{% endfor %}", "chat template line 1: unexpected tag 'endfor'")]
    [InlineData("{{ x ", "chat template line 1: unclosed tag '{{'")]
    [InlineData("{{ 'abc }}", "chat template line 1: unterminated string literal")]
    [InlineData("{{ a ? b }}", "chat template line 1: unexpected character '?'")]
    [InlineData("{# never closed", "chat template line 1: unclosed comment '{#'")]
    public void SyntaxErrors(string template, string message)
    {
        Assert.Equal(message, ParseError(template));
    }

    [Theory]
    [InlineData("{{ raise_exception('bad input') }}", "bad input")]
    [InlineData("\n{{ foo() }}", "chat template line 2: 'foo' is undefined")]
    [InlineData("{{ 'a' + 1 }}", "chat template line 1: unsupported operand types for +: 'str' and 'int'")]
    [InlineData("{{ missing + 'x' }}", "chat template line 1: 'missing' is undefined")]
    [InlineData("{{ nothing.attr }}", "chat template line 1: 'nothing' is undefined")]
    [InlineData("{{ nothing[0] }}", "chat template line 1: 'nothing' is undefined")]
    [InlineData("{{ nothing.startswith('a') }}", "chat template line 1: 'nothing' is undefined")]
    [InlineData("{{ {'a': 1}.b.c }}", "chat template line 1: 'dict object' has no attribute 'b'")]
    [InlineData("{{ [1][3].x }}", "chat template line 1: list object has no element 3")]
    [InlineData("{{ nothing < 1 }}", "chat template line 1: 'nothing' is undefined")]
    [InlineData("{% set x = 1 %}{% set x.y = 2 %}", "chat template line 1: cannot set attribute 'y' of 'x': only namespace() objects can be changed")]
    [InlineData("{{ 1 // 0 }}", "chat template line 1: division by zero")]
    [InlineData("{% for x in 5 %}{% endfor %}", "chat template line 1: cannot loop over a value of type int")]
    public void RuntimeErrors(string template, string message)
    {
        Assert.Equal(message, RenderError(template));
    }

    [Fact]
    public void FolderWithoutTemplateGivesNull()
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            Assert.Null(ChatTemplate.FromDirectory(dir));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"bos_token\": \"<s>\"}");
            Assert.Null(ChatTemplate.FromDirectory(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TemplateFromTokenizerConfigStringOrDefaultEntry()
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            string config = Path.Combine(dir, "tokenizer_config.json");
            File.WriteAllText(config, "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"chat_template\": \"{{ bos_token }}{{ messages[0].content }}{{ eos_token }}\"}");
            Assert.Equal("<s>hi</s>", ChatTemplate.FromDirectory(dir)!.Render([new ChatMessage("user", "hi")], false));

            File.WriteAllText(config, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
            Assert.Equal("D", ChatTemplate.FromDirectory(dir)!.Render([], false));

            // chat_template.jinja (transformers 5) wins over tokenizer_config.json.
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), "J");
            Assert.Equal("J", ChatTemplate.FromDirectory(dir)!.Render([], false));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ChatTemplateListWithoutDefaultIsALoadError()
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}]}");
            var e = Assert.Throws<ModelLoadException>(() => ChatTemplate.FromDirectory(dir));
            Assert.Equal("tokenizer_config.json: chat_template has no entry named 'default'", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
