using System.Text;

namespace Daop.Tests;

/// <summary>Streamed text pieces joined, as a caller that wants the whole reply sees them.</summary>
static class Pieces
{
    public static async Task<string> Join(IAsyncEnumerable<string> pieces)
    {
        var sb = new StringBuilder();
        await foreach (string p in pieces) sb.Append(p);
        return sb.ToString();
    }
}
