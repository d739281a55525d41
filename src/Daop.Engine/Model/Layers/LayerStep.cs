using Daop.Engine.Device;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// One layer's share of a forward chunk: the device, the chunk's buffers (a layer reads xn [T, H] and writes
/// out [T, H]), the layer's index and the chunk's T tokens at positions StartPos...
/// </summary>
readonly record struct LayerStep(IDevice Device, RunState S, int Layer, int Tokens, int StartPos);
