#!/usr/bin/env python3
"""Benchmark nnviz against PyTorch in the same process (issue: speed).

For VGG16 and VGG19, batch 1 and 8, 224 and 512 pixels, float32: the forward to ``conv5_3``
(``conv5_4`` for VGG19) and the input gradient back from it (parameter gradients off on both
sides). nnviz and PyTorch alternate, ``--reps`` times each; the table gives medians and the
ratio nnviz / PyTorch. Peak memory of each side is measured in a child process of its own
(peak RSS over the RSS after building the net). The machine's SGEMM rate (NumPy's BLAS) is
measured by the same tool, and the forward's share of it is reported.

On the GPU (``--device gpu``): nnviz on CuPy, PyTorch on CUDA with cuDNN, TF32 off on both
sides (``--tf32`` turns it on for both), and the Gatys loss-and-gradient step.

    python tools/bench.py                          # the whole grid on the CPU
    python tools/bench.py --arch vgg16 --size 224 --batch 1 --reps 3
    python tools/bench.py --device gpu --json bench-gpu.json
    python tools/bench.py --conv winograd          # nnviz with Winograd F(2×2,3×3)

It prints a Markdown table and writes it, with the machine, versions and date, as JSON.
"""
import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy  # noqa: E402

LAST = {"vgg16": "conv5_3", "vgg19": "conv5_4"}


def conv_flops(net, size):
    """Multiply-adds × 2 of the convolutions up to the last conv, for one image."""
    from nnviz.layers import Conv2d
    flops, h = 0, size
    for name, layer in net.layers.items():
        if isinstance(layer, Conv2d):
            flops += 2 * layer.weight.size * h * h
        elif name.startswith("pool"):
            h //= 2
        if name == LAST[net.arch]:
            break
    return flops


def sgemm_rate(xp, n=2048, reps=5):
    """GFLOP/s of a float32 n×n×n matrix product through the array module's BLAS."""
    from nnviz import backend
    a = xp.asarray(numpy.random.default_rng(0).standard_normal((n, n), dtype=numpy.float32))
    b = a.copy()
    xp.matmul(a, b)
    backend.synchronize()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        xp.matmul(a, b)
        backend.synchronize()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9


class NnvizSide:
    name = "nnviz"

    def __init__(self, arch, device):
        import nnviz
        self.net = getattr(nnviz, arch)(seed=0, include_top=False, device=device)
        self.last = LAST[arch]

    def inputs(self, x):
        return self.net.xp.asarray(x)

    def forward(self, x):
        from nnviz import backend
        y = self.net.forward(x, until=self.last)
        backend.synchronize()
        return y

    def backward(self, y):
        from nnviz import backend
        g = self.net.backward(self.net.xp.ones_like(y), start=self.last)
        backend.synchronize()
        return g


class TorchSide:
    name = "torch"

    def __init__(self, arch, device, nnviz_net):
        import torch
        from torch_twin import twin
        self.torch = torch
        self.dev = "cuda" if device == "gpu" else "cpu"
        t = twin(nnviz_net, torch.float32)
        layers = []
        for name, (kind, p) in t.ops.items():
            if kind == "conv":
                conv = torch.nn.Conv2d(p["weight"].shape[1], p["weight"].shape[0], 3, padding=1)
                conv.weight.data.copy_(p["weight"])
                conv.bias.data.copy_(p["bias"])
                layers.append(conv)
            elif kind == "relu":
                layers.append(torch.nn.ReLU())
            elif kind == "maxpool":
                layers.append(torch.nn.MaxPool2d(2))
            if name == LAST[arch]:
                break
        self.model = torch.nn.Sequential(*layers).to(self.dev).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)     # parameter gradients off, as on the nnviz side

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()

    def inputs(self, x):
        return self.torch.from_numpy(x).to(self.dev)

    def forward(self, x):
        with self.torch.no_grad():
            y = self.model(x)
        self.sync()
        return y

    def backward(self, x):
        xt = x.detach().requires_grad_(True)
        y = self.model(xt)               # the graph must be built: forward with autograd
        self.sync()
        t = time.perf_counter()
        (g,) = self.torch.autograd.grad(y, xt, self.torch.ones_like(y))
        self.sync()
        return time.perf_counter() - t


def time_pair(arch, size, batch, reps, device, warmup=1):
    """Alternate nnviz and torch; medians of forward and of backward for each."""
    nn = NnvizSide(arch, device)
    th = TorchSide(arch, device, nn.net)
    x = numpy.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(numpy.float32)
    xn, xt = nn.inputs(x), th.inputs(x)
    res = {"nnviz_fwd": [], "nnviz_bwd": [], "torch_fwd": [], "torch_bwd": []}
    for rep in range(warmup + reps):
        t = time.perf_counter(); y = nn.forward(xn); f = time.perf_counter() - t
        t = time.perf_counter(); nn.backward(y); b = time.perf_counter() - t
        t = time.perf_counter(); th.forward(xt); tf = time.perf_counter() - t
        tb = th.backward(xt)
        if rep >= warmup:
            res["nnviz_fwd"].append(f); res["nnviz_bwd"].append(b)
            res["torch_fwd"].append(tf); res["torch_bwd"].append(tb)
    out = {k: statistics.median(v) for k, v in res.items()}
    out["gflop"] = conv_flops(nn.net, size) * batch / 1e9
    return out


def child_memory(side, arch, size, batch, device, conv="direct"):
    """Run one side alone in a child process; its peak RSS over the RSS after building."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--arch", arch,
           "--size", str(size), "--batch", str(batch), "--device", device, "--conv", conv]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024


def _peak_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args):
    """Child process: one side, one forward + backward, report peak memory in MB (host RSS on
    the CPU, the allocator's peak on the GPU)."""
    arch, size, batch = args.arch[0], args.size[0], args.batch[0]
    nn = NnvizSide(arch, args.device)
    x = numpy.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(numpy.float32)
    side = nn if args.child == "nnviz" else TorchSide(arch, args.device, nn.net)
    if args.child == "torch":
        del nn
    import gc
    gc.collect()
    base = _rss_mb()
    # the ru_maxrss high-water mark cannot be reset: run in a fresh child, subtract the base
    xs = side.inputs(x)
    if args.child == "nnviz":
        side.backward(side.forward(xs))
    else:
        side.forward(xs)
        side.backward(xs)
    print(json.dumps({"peak_mb": _peak_mb() - base}))


def gatys_step(device, size=512, reps=3):
    """Seconds per loss-and-gradient evaluation of the Gatys objective on VGG19 (nnviz)."""
    try:
        import nnviz
        from nnviz.methods.style import GatysLoss
    except ImportError:
        return None
    net = nnviz.vgg19(seed=0, include_top=False, pooling="avg", device=device)
    rng = numpy.random.default_rng(0)
    content = net.xp.asarray(rng.standard_normal((1, 3, size, size)).astype(numpy.float32) * 50)
    style = net.xp.asarray(rng.standard_normal((1, 3, size, size)).astype(numpy.float32) * 50)
    loss = GatysLoss(net, content, [style], content_layers=("relu4_2",),
                     style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                     content_weight=1.0, style_weight=1.0, tv_weight=1e-3)
    x = rng.standard_normal((1, 3, size, size)) * 50
    loss(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        loss(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine_info(device):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform(),
            "processor": _cpu_name(), "cpu_count": os.cpu_count(), "device": device,
            "numpy": numpy.__version__,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import threadpoolctl
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                        for d in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    if device == "gpu":
        from nnviz import backend
        info["cupy"] = backend.cupy.__version__
        info["gpu"] = backend.cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["vgg16", "vgg19"], choices=["vgg16", "vgg19"])
    p.add_argument("--size", nargs="+", type=int, default=[224, 512])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both sides (default 2)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--tf32", action="store_true", help="allow TF32 on both sides (GPU)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    p.add_argument("--conv", nargs="+", default=["direct"], choices=["direct", "winograd"],
                   help="nnviz's convolution algorithm(s); each gets its rows (default direct)")
    p.add_argument("--json", default="bench-out/bench.json")
    p.add_argument("--child", choices=["nnviz", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(args.threads)
    except ImportError:
        pass
    if args.device == "gpu":
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
        os.environ["NNVIZ_TF32"] = "1" if args.tf32 else "0"   # nnviz's default, read at import
    if args.child:
        from nnviz import functional
        with functional.conv_algorithm(args.conv[0]):
            return run_child(args)

    from nnviz import backend
    xp = backend.get_xp(args.device)
    info = machine_info(args.device)
    info["sgemm_gflops"] = round(sgemm_rate(xp), 1)
    from nnviz import functional
    rows = []
    for arch, size, batch, conv in itertools.product(args.arch, args.size, args.batch, args.conv):
        with functional.conv_algorithm(conv):
            r = time_pair(arch, size, batch, args.reps, args.device)
        row = {"arch": arch, "size": size, "batch": batch, "conv": conv,
               **{k: round(v, 4) for k, v in r.items()}}
        row["fwd_ratio"] = round(r["nnviz_fwd"] / r["torch_fwd"], 3)
        row["bwd_ratio"] = round(r["nnviz_bwd"] / r["torch_bwd"], 3)
        row["fwd_gflops"] = round(r["gflop"] / r["nnviz_fwd"], 1)
        row["fwd_sgemm_share"] = round(row["fwd_gflops"] / info["sgemm_gflops"], 3)
        if not args.no_memory:
            row["nnviz_peak_mb"] = child_memory("nnviz", arch, size, batch, args.device, conv)
            row["torch_peak_mb"] = child_memory("torch", arch, size, batch, args.device)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    gatys = gatys_step(args.device) if args.device == "gpu" else None
    table = markdown(rows, info, gatys)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"machine": info, "rows": rows, "gatys_step_s": gatys, "table": table}, f, indent=1)
    os.replace(tmp, args.json)
    print(f"wrote {args.json}", file=sys.stderr)


def markdown(rows, info, gatys=None):
    head = (f"{info['device'].upper()}: {info.get('gpu') or info['processor']}, "
            f"{info.get('torch_threads', '?')} threads, torch {info.get('torch')}, "
            f"numpy {info['numpy']}, SGEMM {info['sgemm_gflops']} GFLOP/s, {info['date']}\n\n")
    lines = ["| net | size | batch | nnviz conv | nnviz fwd s | torch fwd s | fwd ratio | "
             "nnviz grad s | torch grad s | grad ratio | fwd GFLOP/s (share of SGEMM) | "
             "peak MB nnviz / torch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = (f"{r['nnviz_peak_mb']:.0f} / {r['torch_peak_mb']:.0f}"
               if r.get("nnviz_peak_mb") is not None and r.get("torch_peak_mb") is not None else "–")
        lines.append(f"| {r['arch']} | {r['size']} | {r['batch']} | {r.get('conv', 'direct')} | "
                     f"{r['nnviz_fwd']:.3f} | "
                     f"{r['torch_fwd']:.3f} | {r['fwd_ratio']:.2f} | {r['nnviz_bwd']:.3f} | "
                     f"{r['torch_bwd']:.3f} | {r['bwd_ratio']:.2f} | {r['fwd_gflops']} "
                     f"({r['fwd_sgemm_share']:.0%}) | {mem} |")
    if gatys is not None:
        lines.append(f"\nGatys loss and gradient, VGG19, 512 px, nnviz: {gatys:.3f} s per evaluation")
    return head + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
