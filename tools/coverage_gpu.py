"""Coverage of ``nnviz/`` by the test suite, with the GPU path counted (not part of CI).

On a machine without a GPU the tests run nnviz's GPU path on the tests' CuPy stand-in
(tests/gpu_standin), so the GPU branches are measured like any other. This runs the suite (or
the pytest arguments given) under coverage.py with branch coverage, subprocesses included
(Dask workers, CLI subprocesses), and prints:

- line and branch coverage of ``nnviz/`` and of each module;
- the GPU path: every function of ``nnviz/functional.py`` and ``nnviz/backend.py`` that exists
  for the GPU (``*_gpu``, ``elementwise_kernel``, ...), and every branch in ``nnviz/`` that
  tests for the GPU (``is_gpu_array``, ``xp is numpy``, ``gpu_available``...), with what was
  not executed;
- which CUDA kernels and cupyx scatters ran (the stand-in logs them).

Usage (the whole suite takes several minutes; it is heavy on a shared machine)::

    pip install torch==2.13.0 coverage
    python tools/coverage_gpu.py                 # the whole suite
    python tools/coverage_gpu.py tests/test_gpu.py tests/test_gpu_standin.py
"""
import ast
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GPU_TEST = re.compile(r"is_gpu_array|xp is (not )?numpy|gpu_available|cupy is (not )?None|"
                      r"== \"gpu\"|backend\.cupy|\bgpu\b")


def run(pytest_args, tmp):
    rc = os.path.join(tmp, "coveragerc")
    with open(rc, "w") as f:
        f.write(f"""[run]
branch = True
source = nnviz
parallel = True
concurrency = thread,multiprocessing
patch = subprocess
data_file = {tmp}/.coverage
""")
    env = dict(os.environ, COVERAGE_RCFILE=rc,
               CUPY_STANDIN_LAUNCH_LOG=os.path.join(tmp, "launches.txt"))
    cmd = [sys.executable, "-m", "coverage", "run", "--rcfile", rc, "-m", "pytest", "-q",
           "-p", "no:cacheprovider", *pytest_args]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    subprocess.run([sys.executable, "-m", "coverage", "combine", "-q", "--rcfile", rc], cwd=ROOT,
                   env=env, check=True)
    out = os.path.join(tmp, "coverage.json")
    subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "--rcfile", rc, "-o", out],
                   cwd=ROOT, env=env, check=True)
    with open(out) as f:
        return code, json.load(f)


def _functions(path):
    """``{qualified name: (first line, last line)}`` of the functions of a source file."""
    tree = ast.parse(open(path).read())
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if isinstance(child, ast.FunctionDef):
                    out[name] = (child.lineno, child.end_lineno)
                visit(child, name + ".")
    visit(tree, "")
    return out


def _gpu_functions():
    """The functions that exist for the GPU path."""
    picks = []
    for rel in ("nnviz/functional.py", "nnviz/backend.py"):
        for name, span in _functions(os.path.join(ROOT, rel)).items():
            src = "".join(open(os.path.join(ROOT, rel)).readlines()[span[0] - 1:span[1]])
            if name.endswith("_gpu") or "elementwise_kernel" in src or "cupy" in src:
                picks.append((rel, name, span))
    return picks


def report(data, tmp):
    files = {os.path.relpath(os.path.join(ROOT, k), ROOT) if not os.path.isabs(k)
             else os.path.relpath(k, ROOT): v for k, v in data["files"].items()}
    t = data["totals"]
    print(f"\nnviz/: {t['percent_covered']:.1f}% (statements {t['covered_lines']}/"
          f"{t['num_statements']}, branches {t['covered_branches']}/{t['num_branches']})")
    print("\nper module (statements, branches):")
    for rel, v in sorted(files.items()):
        s = v["summary"]
        print(f"  {rel:40s} {s['percent_covered']:5.1f}%  {s['covered_lines']:4d}/"
              f"{s['num_statements']:<4d} {s['covered_branches']:4d}/{s['num_branches']}")

    print("\nGPU functions (statements executed; lines not executed):")
    for rel, name, (a, b) in _gpu_functions():
        v = files.get(rel)
        if v is None:
            continue
        run_ = [n for n in v["executed_lines"] if a <= n <= b]
        miss = [n for n in v["missing_lines"] if a <= n <= b]
        print(f"  {rel}:{name:28s} {len(run_)}/{len(run_) + len(miss)}"
              + (f"  missing {miss}" if miss else ""))

    print("\nGPU branches in nnviz/ (a test for the GPU; arcs not taken):")
    n_branch = n_full = 0
    for rel, v in sorted(files.items()):
        lines = open(os.path.join(ROOT, rel)).read().splitlines()
        missing = {}
        for src, dst in v.get("missing_branches", []):
            missing.setdefault(src, []).append(dst)
        executed = set(v["executed_lines"])
        branch_lines = {src for src, _ in v.get("executed_branches", [])} | set(missing)
        for ln in sorted(branch_lines):
            text = lines[ln - 1].strip()
            if not GPU_TEST.search(text) or text.startswith(("#", '"')):
                continue
            n_branch += 1
            if ln not in missing and ln in executed:
                n_full += 1
            else:
                print(f"  {rel}:{ln}: {text[:70]}  (not taken: to {missing.get(ln)})")
    print(f"  {n_full} of {n_branch} GPU branches taken both ways")

    log = os.path.join(tmp, "launches.txt")
    ran = sorted(set(open(log).read().split())) if os.path.exists(log) else []
    print(f"\nkernels and scatters launched on the stand-in: {', '.join(ran) or 'none'}")


def main():
    with tempfile.TemporaryDirectory(prefix="nnviz-coverage-") as tmp:
        code, data = run(sys.argv[1:], tmp)
        report(data, tmp)
    print(f"\npytest exit status: {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
