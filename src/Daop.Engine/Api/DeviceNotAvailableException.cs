namespace Daop.Engine.Api;

/// <summary>The device asked for cannot be used in this process (no CUDA GPU, or an ahead-of-time compiled binary).</summary>
public sealed class DeviceNotAvailableException(string message, Exception? inner = null) : Exception(message, inner);
