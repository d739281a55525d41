using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Engine.Model.Families;

public sealed unsafe partial class GptOssTensors
{
    // Float experts: gate_up_proj [E, H, 2I] and down_proj [E, I, H], both [in, out], into per-expert [out, in] rows of the
    // stored type: gate[i, h] = gate_up[h, 2i], up[i, h] = gate_up[h, 2i+1], down[h, i] = down_proj[i, h].
    (WeightMatrix[], WeightMatrix[], WeightMatrix[]) Float(string prefix, int experts, int inter, int hidden)
    {
        var gu = Entry(prefix + "gate_up_proj", [experts, hidden, 2 * inter], TensorDType.BF16, TensorDType.F16, TensorDType.F32);
        var dn = Entry(prefix + "down_proj", [experts, inter, hidden], gu.DType);
        var type = gu.DType switch { TensorDType.BF16 => DType.BF16, TensorDType.F16 => DType.F16, _ => DType.F32 };
        int size = TensorDTypes.SizeOf(gu.DType);
        long matrix = (long)inter * hidden * size;                     // bytes of one [I, H] (or [H, I]) matrix
        byte* dst = Allocate(3 * matrix * experts);                    // per expert: gate, up, down
        nint src = (nint)_store.DataPointer(gu.Name), srcDown = (nint)_store.DataPointer(dn.Name), all = (nint)dst;
        var gate = new WeightMatrix[experts];
        var up = new WeightMatrix[experts];
        var down = new WeightMatrix[experts];
        Parallel.For(0, experts, e =>                                   // experts are independent: one per worker
        {
            byte* g = (byte*)all + 3 * matrix * e, u = g + matrix, d = u + matrix;
            byte* s = (byte*)src + (long)e * hidden * 2 * inter * size, sd = (byte*)srcDown + (long)e * inter * hidden * size;
            if (size == 2) Unstack((ushort*)s, (ushort*)sd, (ushort*)g, (ushort*)u, (ushort*)d, inter, hidden);
            else Unstack((uint*)s, (uint*)sd, (uint*)g, (uint*)u, (uint*)d, inter, hidden);
            gate[e] = new WeightMatrix(g, type, inter, hidden);
            up[e] = new WeightMatrix(u, type, inter, hidden);
            down[e] = new WeightMatrix(d, type, hidden, inter);
        });
        return (gate, up, down);
    }

    // One expert: gu [H, 2I] → gate, up [I, H]; dn [I, H] → down [H, I]. Elements are copied as bits.
    static void Unstack<T>(T* gu, T* dn, T* gate, T* up, T* down, int inter, int hidden) where T : unmanaged
    {
        for (int h = 0; h < hidden; h++)
        {
            T* row = gu + (long)h * 2 * inter;
            for (int i = 0; i < inter; i++)
            {
                gate[(long)i * hidden + h] = row[2 * i];
                up[(long)i * hidden + h] = row[2 * i + 1];
            }
        }
        for (int i = 0; i < inter; i++)
            for (int h = 0; h < hidden; h++) down[(long)h * inter + i] = dn[(long)i * hidden + h];
    }

    // MXFP4 experts: gate_up_proj_blocks [E, 2I, H/32, 16] + _scales [E, 2I, H/32] and down_proj_blocks [E, H, I/32, 16]
    // + _scales [E, H, I/32], already [out, in]: rows repacked into Daop's 17-byte blocks (HubMxfp4), gate from even rows.
    (WeightMatrix[], WeightMatrix[], WeightMatrix[]) Mxfp4(string prefix, int experts, int inter, int hidden)
    {
        if (hidden % 32 != 0 || inter % 32 != 0)
            throw new ModelLoadException($"{_config.Path}: MXFP4 experts need hidden_size ({hidden}) and intermediate_size ({inter}) to be multiples of 32");
        int hb = hidden / 32, ib = inter / 32;
        var guCodes = Entry(prefix + "gate_up_proj_blocks", [experts, 2 * inter, hb, HubMxfp4.CodeBytes], TensorDType.U8);
        var guScales = Entry(prefix + "gate_up_proj_scales", [experts, 2 * inter, hb], TensorDType.U8);
        var dnCodes = Entry(prefix + "down_proj_blocks", [experts, hidden, ib, HubMxfp4.CodeBytes], TensorDType.U8);
        var dnScales = Entry(prefix + "down_proj_scales", [experts, hidden, ib], TensorDType.U8);
        long guRow = hb * 17L, dnRow = ib * 17L;                       // Daop row bytes of gate/up and of down
        long perExpert = 2 * inter * guRow + hidden * dnRow;
        byte* dst = Allocate(perExpert * experts);
        nint gcp = (nint)_store.DataPointer(guCodes.Name), gsp = (nint)_store.DataPointer(guScales.Name);
        nint dcp = (nint)_store.DataPointer(dnCodes.Name), dsp = (nint)_store.DataPointer(dnScales.Name), all = (nint)dst;
        var gate = new WeightMatrix[experts];
        var up = new WeightMatrix[experts];
        var down = new WeightMatrix[experts];
        Parallel.For(0, experts, e =>                                   // experts are independent: one per worker
        {
            byte* gc = (byte*)gcp, gs = (byte*)gsp, dc = (byte*)dcp, ds = (byte*)dsp;
            byte* g = (byte*)all + perExpert * e, u = g + inter * guRow, d = u + inter * guRow;
            for (int r = 0; r < 2 * inter; r++)
            {
                long row = (long)e * 2 * inter + r;
                HubMxfp4.Row(gc + row * hb * HubMxfp4.CodeBytes, gs + row * hb, ((r & 1) == 0 ? g : u) + (r >> 1) * guRow, hb);
            }
            for (int h = 0; h < hidden; h++)
            {
                long row = (long)e * hidden + h;
                HubMxfp4.Row(dc + row * ib * HubMxfp4.CodeBytes, ds + row * ib, d + h * dnRow, ib);
            }
            gate[e] = new WeightMatrix(g, DType.MXFP4, inter, hidden);
            up[e] = new WeightMatrix(u, DType.MXFP4, inter, hidden);
            down[e] = new WeightMatrix(d, DType.MXFP4, hidden, inter);
        });
        return (gate, up, down);
    }
}
