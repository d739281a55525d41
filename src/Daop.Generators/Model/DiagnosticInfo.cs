using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Daop.Generators.Model;

/// <summary>
/// A diagnostic kept as plain values until it is reported: <see cref="Diagnostic"/> and <see cref="Location"/> do not
/// promise value equality, which the incremental pipeline needs to cache a parsed config.
/// </summary>
internal sealed record DiagnosticInfo(string Id, string Message, string Path, TextSpan Span, LinePositionSpan Lines)
{
    /// <summary>The reportable diagnostic, located in the config file.</summary>
    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(Diagnostics.ById(Id), Location.Create(Path, Span, Lines), Message);
}
