using System.Numerics.Tensors;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Generate;

/// <summary>
/// Picks the next token from logits [V]: penalties for tokens already seen (repetition over prompt and output,
/// frequency and presence over the output), then arg-max when temperature is 0, else temperature → top-k → top-p →
/// min-p → a draw from a seeded xoshiro256** stream. All scratch is allocated once per vocabulary size.
/// </summary>
public sealed class Sampler
{
    readonly SamplingOptions _o;
    readonly int[] _idx;     // [V] candidate ids, sorted by probability
    readonly float[] _prob;  // [V] probabilities
    readonly float[] _keys;  // [V] negated probabilities, the sort keys
    readonly int[] _generated = [];  // [V] times each token was generated (penalties only)
    readonly bool[] _seen = [];      // [V] in the prompt or generated (penalties only)
    readonly List<int> _seenIds = []; // the ids set in _seen, so a penalty pass costs what was seen, not V
    readonly float[] _raw = [];       // [V] the logits as the model gave them (log-probabilities only)
    double _logSumExp;
    ulong _s0, _s1, _s2, _s3;

    /// <summary>A sampler for a vocabulary of <paramref name="vocab"/> tokens.</summary>
    public Sampler(SamplingOptions o, int vocab)
    {
        o.Validate();
        _o = o;
        _idx = new int[vocab];
        _prob = new float[vocab];
        _keys = new float[vocab];
        if (o.Penalizes)
        {
            _generated = new int[vocab];
            _seen = new bool[vocab];
        }
        if (o.TopLogprobs != null) _raw = new float[vocab];
        ulong x = o.Seed;
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    /// <summary>Marks the prompt's tokens as seen (the repetition penalty covers them).</summary>
    public void AddPrompt(ReadOnlySpan<int> prompt)
    {
        if (!_o.Penalizes) return;
        foreach (int id in prompt) See(id);
    }

    /// <summary>Records a generated token (call with each token <see cref="Next"/> returned that was kept).</summary>
    public void Accept(int token)
    {
        if (!_o.Penalizes) return;
        _generated[token]++;
        See(token);
    }

    void See(int id)
    {
        if (_seen[id]) return;
        _seen[id] = true;
        _seenIds.Add(id);
    }

    /// <summary>Rejected picks after which a constrained <see cref="Next"/> masks every token the constraint forbids at once.</summary>
    public const int MaxRejections = 16;

    /// <summary>
    /// The next token id. <paramref name="logits"/> may be modified. With <paramref name="constraint"/>, a pick it does not
    /// allow is struck out and the pick repeated (the same distribution as masking every forbidden token first, which
    /// it does after <see cref="MaxRejections"/> rejections).
    /// </summary>
    /// <exception cref="InvalidOperationException">The constraint allows no token at all.</exception>
    public int Next(Span<float> logits, ITokenConstraint? constraint = null)
    {
        if (_raw.Length > 0)
        {
            logits.CopyTo(_raw);
            float max = TensorPrimitives.Max(logits);
            double sum = 0;
            foreach (float l in logits) sum += Math.Exp(l - max);
            _logSumExp = max + Math.Log(sum);
        }
        if (_o.Penalizes) Penalize(logits);
        if (constraint == null) return Pick(logits);
        for (int rejected = 0; ; rejected++)
        {
            if (rejected == MaxRejections)
            {
                int allowed = 0;
                for (int i = 0; i < logits.Length; i++)
                    if (float.IsNegativeInfinity(logits[i]) || !constraint.Allows(i)) logits[i] = float.NegativeInfinity;
                    else allowed++;
                if (allowed == 0) throw new InvalidOperationException("the output constraint allows no token here");
            }
            int t = Pick(logits);
            if (rejected >= MaxRejections || constraint.Allows(t)) return t;
            logits[t] = float.NegativeInfinity;
        }
    }

    // Arg-max, or a draw after temperature, top-k, top-p and min-p (logits left as they are).
    int Pick(Span<float> logits)
    {
        if (_o.Temperature == 0) return TensorPrimitives.IndexOfMax(logits);
        int v = logits.Length;
        var p = _prob.AsSpan(0, v);
        Softmax.Forward(logits, p, _o.Temperature); // max-subtracted: logits / T in the thousands stay finite

        int n = v;
        var idx = _idx.AsSpan(0, v);
        for (int i = 0; i < v; i++) idx[i] = i;
        if (_o.TopK > 0 && _o.TopK < v) n = _o.TopK;
        if (n < v || _o.TopP < 1)
        {
            // Sort candidates by probability, descending (ascending on negated keys allocates nothing).
            TensorPrimitives.Negate(p, _keys.AsSpan(0, v));
            Array.Sort(_keys, _idx, 0, v);
            float cum = 0;
            int keep = 0;
            while (keep < n)
            {
                cum += p[idx[keep]];
                keep++;
                if (cum >= _o.TopP) break;
            }
            n = keep;
        }
        if (_o.MinP > 0)
        {
            float floor = _o.MinP * TensorPrimitives.Max(p);
            if (n == v)
            {
                // Unsorted: compact the ids that pass (the most likely always does).
                n = 0;
                for (int i = 0; i < v; i++)
                    if (p[i] >= floor) idx[n++] = i;
            }
            else
                while (n > 1 && p[idx[n - 1]] < floor) n--; // sorted, descending
        }
        float total = 0;
        for (int i = 0; i < n; i++) total += p[idx[i]];
        double r = NextDouble() * total;
        double acc = 0;
        for (int i = 0; i < n; i++)
        {
            acc += p[idx[i]];
            if (r < acc) return idx[i];
        }
        return idx[n - 1];
    }

    /// <summary>
    /// With <see cref="SamplingOptions.TopLogprobs"/>: the log-probability of <paramref name="token"/> under the logits the
    /// last <see cref="Next"/> was given (before penalties and temperature), and the most likely alternatives, best first.
    /// </summary>
    public TokenLogprob Logprob(int token)
    {
        if (_raw.Length == 0) throw new InvalidOperationException("the sampler records no log-probabilities (SamplingOptions.TopLogprobs is null)");
        int n = Math.Min(_o.TopLogprobs!.Value, _raw.Length);
        var top = new (int, float)[n];
        // Top-n by insertion into a sorted array of at most 20: V·n compares at worst, no V-sized scratch.
        int have = 0;
        for (int i = 0; i < _raw.Length && n > 0; i++)
        {
            float l = _raw[i];
            if (have == n && l <= top[n - 1].Item2) continue;
            int j = Math.Min(have, n - 1);
            while (j > 0 && top[j - 1].Item2 < l) { top[j] = top[j - 1]; j--; }
            top[j] = (i, l);
            if (have < n) have++;
        }
        for (int i = 0; i < n; i++) top[i].Item2 = (float)(top[i].Item2 - _logSumExp);
        return new TokenLogprob(token, (float)(_raw[token] - _logSumExp), top);
    }

    // logits[t] for every t seen: repetition divides a positive logit and multiplies a negative one (HF, llama.cpp);
    // frequency and presence subtract (OpenAI), counting generated tokens only.
    void Penalize(Span<float> logits)
    {
        float rep = _o.RepetitionPenalty;
        foreach (int t in _seenIds)
        {
            float l = logits[t];
            if (rep != 1) l = l > 0 ? l / rep : l * rep;
            int c = _generated[t];
            if (c > 0) l -= c * _o.FrequencyPenalty + _o.PresencePenalty;
            logits[t] = l;
        }
    }

    double NextDouble() => (NextU64() >> 11) * (1.0 / (1UL << 53));

    ulong NextU64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}

/// <summary>A generated token's log-probability and the most likely alternatives at its position, best first.</summary>
/// <param name="Token">The token id generated.</param>
/// <param name="Logprob">Its log-probability (natural log).</param>
/// <param name="Top">The most likely tokens and their log-probabilities (as many as asked for).</param>
public sealed record TokenLogprob(int Token, float Logprob, IReadOnlyList<(int Token, float Logprob)> Top);
