using System;
using System.Collections;
using System.Collections.Generic;

namespace Daop.Generators.Model;

/// <summary>
/// An immutable array compared by contents. Incremental pipeline values must be value-equatable for Roslyn to see
/// that a step's output did not change and keep the downstream steps cached; plain arrays compare by reference.
/// </summary>
internal readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IReadOnlyList<T> where T : IEquatable<T>
{
    readonly T[]? _items;

    public EquatableArray(T[] items)
    {
        _items = items;
    }

    /// <summary>The empty array.</summary>
    public static EquatableArray<T> Empty => new EquatableArray<T>(new T[0]);

    public int Count => _items?.Length ?? 0;

    public T this[int index] => _items![index];

    public bool Equals(EquatableArray<T> other)
    {
        var a = _items ?? new T[0];
        var b = other._items ?? new T[0];
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++)
            if (!a[i].Equals(b[i])) return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is EquatableArray<T> other && Equals(other);

    public override int GetHashCode()
    {
        unchecked
        {
            int h = 17;
            if (_items != null)
                foreach (var item in _items) h = h * 31 + item.GetHashCode();
            return h;
        }
    }

    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(_items ?? new T[0])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
