namespace Daop.Kernels.Generated;

/// <summary>
/// An expert FFN shape known at compile time. The source generator emits one struct per shape named by a model
/// config; kernels generic over a struct implementing this see the members as JIT-time constants.
/// </summary>
public interface IExpertShape
{
    /// <summary>Model width: columns of gate/up, rows of down.</summary>
    static abstract int Hidden { get; }

    /// <summary>Expert intermediate width: rows of gate/up, columns of down.</summary>
    static abstract int Inter { get; }

    /// <summary>Stored dtype of all three weight matrices.</summary>
    static abstract DType Type { get; }
}
