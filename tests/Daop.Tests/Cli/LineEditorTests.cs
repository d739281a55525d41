using Daop.Cli;

namespace Daop.Tests.Cli;

/// <summary>The chat prompt's line editor, typed by a test: editing at the cursor, history walking, end of input.</summary>
public class LineEditorTests
{
    static ConsoleKeyInfo Char(char c) => new(c, c is >= 'a' and <= 'z' ? ConsoleKey.A + (c - 'a') : c == ' ' ? ConsoleKey.Spacebar : ConsoleKey.Oem1, false, false, false);
    static ConsoleKeyInfo Key(ConsoleKey k, bool ctrl = false) => new('\0', k, false, false, ctrl);

    static (LineEditor Editor, Queue<ConsoleKeyInfo> Keys, StringWriter Screen) Make()
    {
        var keys = new Queue<ConsoleKeyInfo>();
        var screen = new StringWriter();
        return (new LineEditor(keys.Dequeue, screen, "> "), keys, screen);
    }

    static void Type(Queue<ConsoleKeyInfo> keys, string text)
    {
        foreach (char c in text) keys.Enqueue(Char(c));
    }

    [Fact]
    public void EditsAtTheCursor()
    {
        var (editor, keys, screen) = Make();
        Type(keys, "helo");
        keys.Enqueue(Key(ConsoleKey.LeftArrow));
        Type(keys, "l");                              // hel|lo → hello
        keys.Enqueue(Key(ConsoleKey.Home));
        Type(keys, "x");                              // xhello
        keys.Enqueue(Key(ConsoleKey.Delete));         // xello
        keys.Enqueue(Key(ConsoleKey.E, ctrl: true));
        keys.Enqueue(Key(ConsoleKey.Backspace));      // xell
        keys.Enqueue(Key(ConsoleKey.Enter));
        Assert.Equal("xell", editor.ReadLine());
        Assert.StartsWith("> ", screen.ToString());
        Assert.Contains("\r> xell\u001b[K", screen.ToString());
    }

    [Fact]
    public void UpAndDownWalkTheHistoryAndKeepTheDraft()
    {
        var (editor, keys, _) = Make();
        foreach (string line in new[] { "first", "second", "second", " " })
        {
            Type(keys, line);
            keys.Enqueue(Key(ConsoleKey.Enter));
            Assert.Equal(line, editor.ReadLine());
        }
        Assert.Equal(["first", "second"], editor.History); // no blank line, no repeat of the last
        Type(keys, "dra");
        keys.Enqueue(Key(ConsoleKey.UpArrow));   // second
        keys.Enqueue(Key(ConsoleKey.UpArrow));   // first
        keys.Enqueue(Key(ConsoleKey.UpArrow));   // stays at first
        Type(keys, "!");                         // first!
        keys.Enqueue(Key(ConsoleKey.Enter));
        Assert.Equal("first!", editor.ReadLine());
        Type(keys, "dra");
        keys.Enqueue(Key(ConsoleKey.UpArrow));
        keys.Enqueue(Key(ConsoleKey.DownArrow)); // back to the draft
        Type(keys, "ft");
        keys.Enqueue(Key(ConsoleKey.Enter));
        Assert.Equal("draft", editor.ReadLine());
    }

    [Fact]
    public void CtrlDOnAnEmptyLineIsEndOfInputAndCtrlUClears()
    {
        var (editor, keys, _) = Make();
        Type(keys, "abc");
        keys.Enqueue(Key(ConsoleKey.U, ctrl: true));
        keys.Enqueue(Key(ConsoleKey.D, ctrl: true));
        Assert.Null(editor.ReadLine());
    }
}
