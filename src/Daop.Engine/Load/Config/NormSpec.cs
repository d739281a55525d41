namespace Daop.Engine.Load.Config;

/// <summary>How a norm is computed.</summary>
public enum NormKind
{
    /// <summary>x / rms(x) · w.</summary>
    RmsNorm,
    /// <summary>(x − mean) / std · w + b.</summary>
    LayerNorm,
}

/// <summary>A norm: its kind (RMSNorm, or LayerNorm with a bias) and epsilon.</summary>
public sealed record NormSpec(NormKind Kind, float Eps)
{
    /// <summary>RMSNorm with <paramref name="eps"/>.</summary>
    public static NormSpec Rms(float eps) => new(NormKind.RmsNorm, eps);
}
