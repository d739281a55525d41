"""Reference timings with PyTorch for `daop bench` comparisons, run on the same machine in the same job.

cpu: bf16 and fp32 matvec (one token) and the three projections of a SwiGLU expert, all cores.
gpu: the three bf16 projections of one expert (single token), CUDA-event timed.
Prints one JSON object per line.
"""
import json, sys, time
import torch

SHAPES = {"mixtral": (4096, 14336), "qwen3-30b-a3b": (2048, 768), "olmoe": (2048, 1024)}


def best(fn, iters):
    fn()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - t0) / iters)
    return min(times)


def cpu(threads):
    torch.set_num_threads(threads)
    for name, (h, i) in SHAPES.items():
        for dt in (torch.bfloat16, torch.float32):
            wg, wu = torch.randn(i, h, dtype=dt), torch.randn(i, h, dtype=dt)
            wd = torch.randn(h, i, dtype=dt)
            x = torch.randn(1, h, dtype=dt)
            nbytes = 3 * h * i * wg.element_size()
            iters = max(3, int(2e9 / nbytes))
            def ffn():
                g = x @ wg.T
                u = x @ wu.T
                return (torch.nn.functional.silu(g) * u) @ wd.T
            s = best(ffn, iters)
            print(json.dumps({"who": "torch-cpu", "op": "x@W.T", "shape": name, "dtype": str(dt), "threads": threads,
                              "us": s * 1e6, "gbps": nbytes / s / 1e9}), flush=True)
            xv = x[0]
            def mv():
                g = torch.mv(wg, xv)
                u = torch.mv(wu, xv)
                return torch.mv(wd, torch.nn.functional.silu(g) * u)
            s = best(mv, iters)
            print(json.dumps({"who": "torch-cpu", "op": "torch.mv", "shape": name, "dtype": str(dt), "threads": threads,
                              "us": s * 1e6, "gbps": nbytes / s / 1e9}), flush=True)


def gpu():
    dev = torch.device("cuda")
    for name, (h, i) in SHAPES.items():
        wg = torch.randn(i, h, dtype=torch.bfloat16, device=dev)
        wu = torch.randn(i, h, dtype=torch.bfloat16, device=dev)
        wd = torch.randn(h, i, dtype=torch.bfloat16, device=dev)
        x = torch.randn(1, h, dtype=torch.bfloat16, device=dev)
        def ffn():
            return (torch.nn.functional.silu(x @ wg.T) * (x @ wu.T)) @ wd.T
        for _ in range(10):
            ffn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        n = 200
        start.record()
        for _ in range(n):
            ffn()
        end.record()
        torch.cuda.synchronize()
        us = start.elapsed_time(end) * 1e3 / n
        nbytes = 3 * h * i * 2
        print(json.dumps({"who": "torch-cuda", "shape": name, "dtype": "bf16", "us": us, "gbps": nbytes / us / 1e3}), flush=True)


def gemv():
    dev = torch.device("cuda")
    for rows, cols in ((14336, 4096), (4096, 14336)):
        w = torch.randn(rows, cols, dtype=torch.bfloat16, device=dev)
        x = torch.randn(cols, dtype=torch.bfloat16, device=dev)
        for _ in range(10):
            torch.mv(w, x)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        n = 500
        start.record()
        for _ in range(n):
            torch.mv(w, x)
        end.record()
        torch.cuda.synchronize()
        us = start.elapsed_time(end) * 1e3 / n
        print(json.dumps({"who": "torch-cuda", "op": "torch.mv", "shape": f"{rows}x{cols}", "us": us,
                          "gbps": rows * cols * 2 / us / 1e3}), flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if what == "cpu":
        cpu(int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads())
    elif what == "gemv":
        gemv()
    else:
        gpu()
