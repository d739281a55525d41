namespace Daop.Engine.Generate;

/// <summary>
/// The character-level grammar of JSON strings and numbers (RFC 8259), shared by the recognizers of constrained
/// decoding (<see cref="JsonPrefix"/>, <see cref="JsonSchemaPrefix"/>): each step reads one character into a small
/// phase, so the callers keep their states value types.
/// </summary>
static class JsonScalars
{
    /// <summary>Inside a string, after its opening quote.</summary>
    public enum StringPhase : byte { Text, Escape, Unicode }

    /// <summary>Inside a number: after its sign, a leading zero, integer digits, the point, fraction digits, the e, its sign, exponent digits.</summary>
    public enum NumberPhase : byte { Minus, Zero, Int, FracStart, Frac, ExpStart, ExpSign, Exp }

    /// <summary>What a character did: could not come here; was read; ended the value (a string's closing quote, read; a
    /// number: it ended before the character, which is not read).</summary>
    public enum Step : byte { Reject, Read, End }

    /// <summary>One character of a string after its opening quote; <paramref name="hex"/> counts a \u escape's digits.</summary>
    public static Step String(ref StringPhase phase, ref int hex, char c)
    {
        switch (phase)
        {
            case StringPhase.Escape:
                if (c == 'u') { phase = StringPhase.Unicode; hex = 0; return Step.Read; }
                phase = StringPhase.Text;
                return c is '"' or '\\' or '/' or 'b' or 'f' or 'n' or 'r' or 't' ? Step.Read : Step.Reject;
            case StringPhase.Unicode:
                if (!char.IsAsciiHexDigit(c)) return Step.Reject;
                if (++hex == 4) phase = StringPhase.Text;
                return Step.Read;
            default:
                if (c == '"') return Step.End;
                if (c == '\\') { phase = StringPhase.Escape; return Step.Read; }
                return c >= 0x20 ? Step.Read : Step.Reject;
        }
    }

    /// <summary>The phase after a number's first character (a '-' or a digit).</summary>
    public static NumberPhase NumberStart(char c) => c == '-' ? NumberPhase.Minus : c == '0' ? NumberPhase.Zero : NumberPhase.Int;

    /// <summary>One character after a number's first; an <paramref name="integer"/> has no fraction or exponent.</summary>
    public static Step Number(ref NumberPhase phase, char c, bool integer)
    {
        switch (phase)
        {
            case NumberPhase.Minus:
                if (c == '0') return To(ref phase, NumberPhase.Zero);
                return c is >= '1' and <= '9' ? To(ref phase, NumberPhase.Int) : Step.Reject;
            case NumberPhase.Zero or NumberPhase.Int:
                if (phase == NumberPhase.Int && char.IsAsciiDigit(c)) return Step.Read;
                if (!integer && c == '.') return To(ref phase, NumberPhase.FracStart);
                if (!integer && c is 'e' or 'E') return To(ref phase, NumberPhase.ExpStart);
                return Step.End;
            case NumberPhase.FracStart: return char.IsAsciiDigit(c) ? To(ref phase, NumberPhase.Frac) : Step.Reject;
            case NumberPhase.Frac:
                if (char.IsAsciiDigit(c)) return Step.Read;
                return c is 'e' or 'E' ? To(ref phase, NumberPhase.ExpStart) : Step.End;
            case NumberPhase.ExpStart:
                if (c is '+' or '-') return To(ref phase, NumberPhase.ExpSign);
                return char.IsAsciiDigit(c) ? To(ref phase, NumberPhase.Exp) : Step.Reject;
            case NumberPhase.ExpSign: return char.IsAsciiDigit(c) ? To(ref phase, NumberPhase.Exp) : Step.Reject;
            default: return char.IsAsciiDigit(c) ? Step.Read : Step.End;
        }
    }

    static Step To(ref NumberPhase phase, NumberPhase next)
    {
        phase = next;
        return Step.Read;
    }
}
