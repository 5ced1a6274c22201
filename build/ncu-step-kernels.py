# One decode step, kernel by kernel, from ncu's CSV (ncu --csv --metrics gpu__time_duration.sum ... > ncu.txt while
# the bench runs a model's eager decode steps): the third step (two warm-up steps first), from its first launch of the
# marker kernel (one a layer: rope_kv_write, or a mixture's expert_choice / expert_route) to the next step's, its
# kernels' times summed by name. Each kernel ran alone (cold caches unless ncu ran with --cache-control none).
#   python3 build/ncu-step-kernels.py ncu.txt [layers] [marker]   (layers: the model's, 48 for qwen3-30b-a3b)
import csv, sys, collections, re
rows = []
with open(sys.argv[1], errors="replace") as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum": continue
    unit, v = r["Metric Unit"], float(r["Metric Value"].replace(",", ""))
    ns = v * {"nsecond": 1, "usecond": 1e3, "msecond": 1e6, "second": 1e9}.get(unit, 1)
    rows.append((r["Kernel Name"][:90], r.get("Grid Size", ""), ns))
print("kernels profiled:", len(rows))
marker = sys.argv[3] if len(sys.argv) > 3 else "rope_kv_write"
choice = [i for i, r in enumerate(rows) if r[0].startswith(marker)]
print(f"{marker} launches:", len(choice))
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 48
if len(choice) >= 2 * layers:
    # the third decode step (two warm-up steps first): from its first marker to the next step's
    s = 2 if len(choice) >= 3 * layers else 0
    a, b = choice[s * layers], choice[(s + 1) * layers]
    window = rows[a:b]
    print(f"window: kernels {a}..{b} ({b - a} kernels), one step's worth")
    total = sum(r[2] for r in window)
    print(f"sum of kernel durations in the window: {total / 1e6:.3f} ms")
    agg = collections.defaultdict(lambda: [0, 0.0, ""])
    for name, grid, ns in window:
        key = re.sub(r"\(.*", "", name)[:70]
        agg[key][0] += 1; agg[key][1] += ns; agg[key][2] = grid
    for key, (n, ns, grid) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"{ns / 1e3:9.1f} us  {n:4d} x {ns / n / 1e3:7.2f} us  grid {grid:16s} {key}")
