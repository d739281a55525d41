using System.Text;

namespace Daop.Cli;

/// <summary>
/// The chat prompt's line editor on a terminal: typing inserts at the cursor, Left/Right/Home/End (Ctrl+A/E) move,
/// Backspace/Delete erase, Ctrl+U clears, Up/Down walk the lines entered before (this session's, at most
/// <see cref="MaxHistory"/>), Enter returns the line, Ctrl+D on an empty line is end of input. Redraws the line with
/// ANSI sequences after each key. Keys come from a function so tests can type.
/// </summary>
sealed class LineEditor(Func<ConsoleKeyInfo> readKey, TextWriter screen, string prompt)
{
    /// <summary>Lines kept for Up/Down.</summary>
    public const int MaxHistory = 500;
    /// <summary>Longest line accepted; typing beyond it is ignored.</summary>
    public const int MaxLine = 64 * 1024;

    readonly List<string> _history = [];

    /// <summary>Lines entered so far, oldest first (blank lines and repeats of the last one are not kept).</summary>
    public IReadOnlyList<string> History => _history;

    /// <summary>Reads one line; null at end of input (Ctrl+D on an empty line).</summary>
    public string? ReadLine()
    {
        var line = new StringBuilder();
        int cursor = 0, entry = _history.Count; // entry == Count: the line being typed
        string draft = "";
        screen.Write(prompt);
        screen.Flush();
        while (true)
        {
            var k = readKey();
            bool ctrl = (k.Modifiers & ConsoleModifiers.Control) != 0;
            switch (k.Key)
            {
                case ConsoleKey.Enter:
                    screen.WriteLine();
                    screen.Flush();
                    string done = line.ToString();
                    if (done.Trim().Length > 0 && (_history.Count == 0 || _history[^1] != done))
                    {
                        _history.Add(done);
                        if (_history.Count > MaxHistory) _history.RemoveAt(0);
                    }
                    return done;
                case ConsoleKey.D when ctrl:
                    if (line.Length == 0)
                    {
                        screen.WriteLine();
                        return null;
                    }
                    if (cursor < line.Length) line.Remove(cursor, 1);
                    break;
                case ConsoleKey.Backspace:
                    if (cursor > 0) line.Remove(--cursor, 1);
                    break;
                case ConsoleKey.Delete:
                    if (cursor < line.Length) line.Remove(cursor, 1);
                    break;
                case ConsoleKey.LeftArrow:
                    cursor = Math.Max(0, cursor - 1);
                    break;
                case ConsoleKey.RightArrow:
                    cursor = Math.Min(line.Length, cursor + 1);
                    break;
                case ConsoleKey.Home:
                case ConsoleKey.A when ctrl:
                    cursor = 0;
                    break;
                case ConsoleKey.End:
                case ConsoleKey.E when ctrl:
                    cursor = line.Length;
                    break;
                case ConsoleKey.U when ctrl:
                    line.Clear();
                    cursor = 0;
                    break;
                case ConsoleKey.UpArrow or ConsoleKey.DownArrow:
                    int to = entry + (k.Key == ConsoleKey.UpArrow ? -1 : 1);
                    if (to < 0 || to > _history.Count) break;
                    if (entry == _history.Count) draft = line.ToString();
                    entry = to;
                    line.Clear().Append(entry == _history.Count ? draft : _history[entry]);
                    cursor = line.Length;
                    break;
                default:
                    if (!ctrl && !char.IsControl(k.KeyChar) && line.Length < MaxLine) line.Insert(cursor++, k.KeyChar);
                    break;
            }
            Redraw(line, cursor);
        }
    }

    // \r, the prompt and the line, erase to the end of the screen line, then back to the cursor.
    void Redraw(StringBuilder line, int cursor)
    {
        screen.Write('\r');
        screen.Write(prompt);
        screen.Write(line);
        screen.Write("\u001b[K");
        int back = line.Length - cursor;
        if (back > 0) screen.Write($"\u001b[{back}D");
        screen.Flush();
    }
}
