namespace Daop.Generators.Model;

/// <summary>
/// The checkpoint's weight dtype as the generator sees it. Mirrors Daop.Kernels.DType by name (the generator
/// cannot reference the assembly it generates code for); the emitted code spells <c>DType.&lt;name&gt;</c>.
/// </summary>
internal enum WeightType
{
    F32,
    F16,
    BF16,
}
