using Daop.Engine.Device;

namespace Daop.Engine.Model;

/// <summary>
/// One sequence's share of a batched step (<see cref="MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/>):
/// <paramref name="Tokens"/> consecutive tokens at positions <paramref name="StartPos"/>.. of <paramref name="Cache"/>, appended
/// to it — one token for a decode step, a prompt chunk otherwise. <paramref name="Logits"/>: whether the step writes the
/// logits of its last token (a prompt chunk that does not end the prompt needs none).
/// </summary>
public readonly record struct BatchSegment(KvCache Cache, int StartPos, int Tokens, bool Logits = true);
