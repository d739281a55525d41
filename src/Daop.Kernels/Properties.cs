using System.Runtime.CompilerServices;

// Tests drive the Vector256 and scalar kernels directly on machines whose best path is wider.
[assembly: InternalsVisibleTo("Daop.Tests")]
