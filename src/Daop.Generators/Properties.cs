using System.Runtime.CompilerServices;

// The generator tests inspect the pipeline's values (parsed configs, shapes) in the tracked incremental steps.
[assembly: InternalsVisibleTo("Daop.Tests")]
