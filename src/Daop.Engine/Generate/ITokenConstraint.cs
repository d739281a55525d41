namespace Daop.Engine.Generate;

/// <summary>
/// Constrained decoding: which tokens may come next, given those accepted so far. One instance per sequence
/// (<see cref="SamplingOptions.Constraint"/> makes them); <see cref="Sampler"/> never picks a token it does not allow.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>True if <paramref name="token"/> may follow the tokens accepted so far.</summary>
    bool Allows(int token);

    /// <summary>Records a generated token (one <see cref="Allows"/> allowed).</summary>
    void Accept(int token);

    /// <summary>True once the output is complete: the sequence ends there, as at a stop token.</summary>
    bool IsComplete { get; }
}
