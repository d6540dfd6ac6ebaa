"""Speed of nca_gradio against the original lesson's recipe: one table, every figure a ratio from this run.

    python bench/speed.py --threads 1          # CPU, the full table (about 3 minutes on 2 shared cores)
    python bench/speed.py --quick              # a smoke run of every row at toy sizes
    python bench/speed.py --device cuda        # the same on a GPU, plus CUDA graphs and torch.compile
    python bench/speed.py --compile            # on a CPU too: torch.compile growth (minutes to compile)

Machines are noisy (shared cores, turbo, other jobs), so baseline and ours are
timed in alternating rounds in the same process and each ratio is the median
of the per-round ratios; absolute numbers are medians and only describe this run.
Process-wide settings (threads, and the flush-denormal mode `Trainer` sets on
CPU) apply to both sides alike. On cores other jobs share, use `--threads 1`:
OpenMP threads waiting on a descheduled sibling slow every op many times over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch
from lesson_recipe import LessonNCA, LessonTrainer, inference_step

from nca_gradio.fast import Grower
from nca_gradio.graph_step import GraphedIteration
from nca_gradio.images import load_target
from nca_gradio.model import NCA, PRESETS
from nca_gradio.precision import dtype_name, inference_dtype, training_dtype
from nca_gradio.render import run
from nca_gradio.rollout_steps import GRAPHED_CHUNK
from nca_gradio.train import TrainConfig, Trainer, device_recipe

TARGET = ROOT / "tests" / "data" / "pebbles.png"
GROW_TARGET_STEPS_PER_S = 5000.0  # issue 6: the texture preset growing 256x256 on one GPU
TRAIN_TARGET_SPEEDUP = 5.0  # issue 6: training against the lesson on the same GPU


@dataclass
class Sizes:
    train_size: int = 128
    train_steps: int = 64
    train_rounds: int = 3
    grow_size: int = 256
    grow_steps: dict[str, int] | None = None  # steps per timed call, by preset
    grow_rounds: int = 5
    memory_size: int = 128
    memory_batch: int = 8
    memory_steps: int = 96
    matmul: int = 2048

    @classmethod
    def pick(cls, quick: bool, cuda: bool) -> Sizes:
        if quick:
            return cls(32, 8, 2, 64, {"seed": 4, "texture": 4}, 2, 32, 8, 16, 512)
        if cuda:
            return cls(128, 64, 10, 256, {"seed": 512, "texture": 512}, 5, 128, 8, 96, 8192)
        return cls(grow_steps={"seed": 40, "texture": 10})


@dataclass
class Row:
    label: str
    baseline: str
    ours: str
    ratio: str


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate(fns: dict[str, Callable[[], object]], rounds: int, device: torch.device, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in alternating rounds after `warmup` untimed calls."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def speedup(times: dict[str, list[float]], baseline: str, ours: str) -> float:
    """Median over rounds of baseline time / our time: robust to load that drifts during the run."""
    return statistics.median(b / o for b, o in zip(times[baseline], times[ours]))


def med(times: list[float]) -> float:
    return statistics.median(times)


# ----------------------------------------------------------------------------- the rows


def random_vgg(device: torch.device) -> torch.nn.Module:
    """timm's VGG16 with random weights (pretrained ones cannot be downloaded here; same cost)."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("vgg16", pretrained=False).to(device).eval()


def training_rows(sizes: Sizes, device: torch.device, compile_too: bool) -> tuple[list[Row], float, dict]:
    """(1) the lesson's configuration, ours against the lesson; (2) our default texture recipe."""
    target = load_target(TARGET, 128)
    vgg = random_vgg(device)
    lesson = LessonTrainer(target[0], vgg, n=128, sz=sizes.train_size, bs=4, device=device)
    steps = sizes.train_steps
    seed_settings = {"preset": "seed", "loss": "gram", "size": sizes.train_size, "target_size": 128, "batch": 4, "pool_size": 128,
                     "steps_min": steps, "steps_max": steps}
    def seed_trainer() -> Trainer:
        config = TrainConfig(device=str(device), **seed_settings)
        return Trainer(target, config, vgg_features=vgg.features[:26], log=lambda message: None)

    ours = seed_trainer()
    fns: dict[str, Callable[[], object]] = {"lesson": lambda: lesson.train_step(steps), "ours": ours.train_step}
    info: dict = {}
    compiled_runs: dict[str, str] = {}  # label in fns -> how it compiled
    for graph_chunk in (GRAPHED_CHUNK, 2 * GRAPHED_CHUNK) if compile_too else ():
        compiled = seed_trainer()
        compiled.compile = True
        compiled.rollout.graphed_chunk = graph_chunk
        start = time.perf_counter()
        compiled.train_step()  # compiles (and probes) once
        sync(device)
        label = f"ours+compile, {graph_chunk} steps a graph"
        compiled_runs[label] = (f"compiled in {time.perf_counter() - start:.0f} s" if compiled.rollout.compiled
                                else "compile FAILED: ran the plain loop")
        fns[label] = compiled.train_step
    times = alternate(fns, sizes.train_rounds, device)
    lesson_s = med(times["lesson"])
    shape = f"{sizes.train_size}x{sizes.train_size}, batch 4, {steps} steps"
    rows = [Row(f"(1) train s/it, lesson config: seed preset, gram loss, {shape}",
                f"{lesson_s:.3f} s/it", f"{med(times['ours']):.3f} s/it", f"{speedup(times, 'lesson', 'ours'):.2f}x")]
    for label, state in compiled_runs.items():
        rows.append(Row(f"(1c) same, {label} (Trainer.compile = True, {state})",
                        f"{lesson_s:.3f} s/it", f"{med(times[label]):.3f} s/it", f"{speedup(times, 'lesson', label):.2f}x"))
    info["lesson"] = lesson  # (2g) times it again, beside the GPU recipe
    info["best_train_speedup"] = max(speedup(times, "lesson", label) for label in fns if label != "lesson")

    # (2) the recipe people actually run: TrainConfig defaults (texture preset, patch loss), rollout pinned to its mean
    defaults = TrainConfig()
    mean_steps = (defaults.steps_min + defaults.steps_max) // 2
    if sizes.train_size < defaults.size:  # --quick
        mean_steps = sizes.train_steps
    texture_settings: dict = {"steps_min": mean_steps, "steps_max": mean_steps}
    if sizes.train_size < defaults.size:
        texture_settings.update(size=sizes.train_size, target_size=64)
    texture_target = load_target(TARGET, texture_settings.get("target_size", defaults.target_size))
    trainers = {p: Trainer(texture_target, TrainConfig(device=str(device), precision=p, **texture_settings), log=lambda m: None)
                for p in ("float32", "bfloat16")}
    times2 = alternate({"lesson": lambda: lesson.train_step(steps), **{p: t.train_step for p, t in trainers.items()}},
                       sizes.train_rounds, device)
    auto = dtype_name(training_dtype(device, defaults.precision))  # what the default recipe runs in: one of the two
    cfg = trainers[auto].config
    rows.append(Row(f"(2) train s/it, our default: texture preset, patch loss, {cfg.size}x{cfg.size}, batch {cfg.batch}, "
                    f"{mean_steps} steps, precision auto ({auto} here)", f"{med(times2['lesson']):.3f} s/it (lesson, as in 1)",
                    f"{med(times2[auto]):.3f} s/it", f"{speedup(times2, 'lesson', auto):.2f}x"))
    rows.append(Row("(2p) same, --precision bfloat16 against --precision float32", f"{med(times2['float32']):.3f} s/it (float32)",
                    f"{med(times2['bfloat16']):.3f} s/it", f"{speedup(times2, 'float32', 'bfloat16'):.2f}x"))
    return rows, lesson_s, info


GRAPH_TARGET_ITERS_PER_S = 100.0  # issue 22: the GPU recipe's iteration as one CUDA graph on an H100/H200


def graph_rows(sizes: Sizes, device: torch.device, lesson: LessonTrainer) -> tuple[list[Row], dict]:
    """(2g) the GPU recipe's iteration (texture preset, patch loss with matching, batch 8, 64x64, 32..96 steps).

    Graphed (the default on CUDA: one replay an iteration) against eager and the lesson on the same
    device. On a CPU the graph's body runs uncaptured: the row then shows what padding every rollout
    to 96 steps costs where launches are free, not a speed-up. `lesson` is (1)'s.
    """
    settings = TrainConfig(**device_recipe(torch.device("cuda")))  # the GPU recipe, whatever runs it
    quick = sizes.train_size < 64
    recipe = {f: getattr(settings, f) for f in ("batch", "pool_size", "match_weight", "steps_min", "steps_max", "size", "target_size")}
    if quick:
        recipe.update(size=sizes.train_size, target_size=64, steps_min=sizes.train_steps, steps_max=2 * sizes.train_steps)
    target = load_target(TARGET, recipe["target_size"])
    trainers = {}
    for name in ("eager", "graph"):
        trainer = Trainer(target, TrainConfig(device=str(device), iters=100_000, **recipe), log=lambda m: None)
        trainer.cuda_graph = name == "graph"
        trainer.train_step()  # Adam's state: the graph needs it
        if name == "graph" and device.type != "cuda":
            trainer._graphed = GraphedIteration(trainer.parts, capture=False)
        trainers[name] = trainer
    times = alternate({"lesson": lambda: lesson.train_step(sizes.train_steps), **{n: t.train_step for n, t in trainers.items()}},
                      max(sizes.train_rounds, 10), device, warmup=3)  # warm-up: the graph is captured in it
    path = trainers["graph"].path if device.type == "cuda" else "graph body uncaptured (CPU)"
    shape = f"texture preset, patch loss, match {recipe['match_weight']:g}, {recipe['size']}x{recipe['size']}, " \
            f"batch {recipe['batch']}, {recipe['steps_min']}..{recipe['steps_max']} steps"
    graph_rate = 1 / med(times["graph"])
    rows = [Row(f"(2g) train it/s, GPU recipe ({shape}), {path}, against the lesson config of (1)",
                f"{1 / med(times['lesson']):.1f} it/s", f"{graph_rate:.1f} it/s", f"{speedup(times, 'lesson', 'graph'):.2f}x"),
            Row(f"(2ge) same recipe, {path} against eager", f"{1 / med(times['eager']):.1f} it/s (eager)",
                f"{graph_rate:.1f} it/s", f"{speedup(times, 'eager', 'graph'):.2f}x")]
    return rows, {"graph_iters_per_s": graph_rate, "graph_path": path}


def step_flops(channels: int, hidden: int) -> float:
    """FLOPs per cell of one NCA step as the algorithm states it (not as our fused kernel executes it).

    Perception: four 3x3 filters per channel; w1: 4C -> H plus bias and ReLU;
    w2: H -> C; the masked add: 2 per channel. The fused dense 3x3 convolution
    we run instead executes 2*9*C*H for the first two, about twice as many.
    """
    c, h = channels, hidden
    return 2 * 9 * 4 * c + 2 * 4 * c * h + after_w1_flops(c, h)


def executed_step_flops(channels: int, hidden: int) -> float:
    """FLOPs per cell that our fused step actually executes: the dense 3x3 convolution C -> H, then as above.

    Against `step_flops` this says how busy the hardware is; against the
    algorithm's count, how much of that work is useful.
    """
    return 2 * 9 * channels * hidden + after_w1_flops(channels, hidden)


def after_w1_flops(channels: int, hidden: int) -> float:
    """What both counts share: bias and ReLU, w2 (H -> C), and the masked add (2 per channel)."""
    return 2 * hidden + 2 * hidden * channels + 2 * channels


def matmul_flops(n: int, device: torch.device, rounds: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """This machine's matrix-multiply FLOP/s in `dtype` (the roof), at the same thread count."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = alternate({"mm": lambda: a @ b}, rounds, device)
    return 2 * n**3 / min(times["mm"])


def inference_rows(sizes: Sizes, device: torch.device, compile_too: bool, roof: float) -> tuple[list[Row], list[Row], dict]:
    """(3) steps/s at 256x256 batch 1 against the lesson's forward, and (5) the roofline fraction.

    "ours" is `render.run` as users get it (precision auto); where that is
    bfloat16, a float32 row is added and the roof for the bfloat16 row is a
    bfloat16 matmul measured the same way.
    """
    rows, roofline, info = [], [], {}
    bf16_roof: float | None = None  # measured once, only where a preset grows in bfloat16
    size = sizes.grow_size
    for name in ("seed", "texture"):
        preset = PRESETS[name]
        torch.manual_seed(0)
        model = NCA(PRESETS[name]).to(device).eval()
        mixed = inference_dtype(model, device) is not None
        if mixed and bf16_roof is None:
            bf16_roof = matmul_flops(sizes.matmul, device, dtype=torch.bfloat16)
        roofs = {"ours": bf16_roof if mixed else roof, "ours, float32": roof}
        torch.nn.init.normal_(model.w2.weight, std=0.02)  # as if trained: nothing stays zero
        lesson = LessonNCA(nh=preset.hidden, nc=preset.channels, device=device).to(device)
        x0 = torch.randn(1, preset.channels, size, size, device=device) * 0.1
        steps = sizes.grow_steps[name]
        generator = torch.Generator(device).manual_seed(0)

        paths: dict[str, str] = {}

        def ours(precision: str = "auto") -> torch.Tensor:  # what the studio and `nca grow` run
            rollout = run(model, x0, steps, every=steps, precision=precision)
            paths[precision] = rollout.path
            return rollout.state

        def theirs() -> torch.Tensor:
            x = x0
            with torch.no_grad():
                for _ in range(steps):
                    x = inference_step(lesson, x)
            return x

        fns: dict[str, Callable[[], object]] = {"lesson": theirs, "ours": ours}
        if mixed:
            fns["ours, float32"] = lambda: ours("float32")
        growers: dict[str, Grower] = {}
        if device.type == "cuda":
            growers["Grower (CUDA graph)"] = Grower(model, chunk=64)
        if compile_too:
            growers["Grower (torch.compile" + (" + CUDA graph)" if device.type == "cuda" else ")")] = Grower(
                model, chunk=64 if device.type == "cuda" else steps, compile=True, unit=min(8, steps))
        for label, grower in growers.items():
            fns[label] = lambda grower=grower: grower.run(x0, steps, generator)
        times = alternate(fns, sizes.grow_rounds, device, warmup=2)
        per_s = {k: steps / med(v) for k, v in times.items()}
        shape = f"{size}x{size}, batch 1"
        rows.append(Row(f"(3) grow steps/s, {name} preset ({preset.channels} ch, {preset.hidden} hidden), {shape}, "
                        f"render.run: ran as '{paths['auto']}'",
                        f"{per_s['lesson']:.1f} steps/s", f"{per_s['ours']:.1f} steps/s",
                        f"{speedup(times, 'lesson', 'ours'):.2f}x"))
        if mixed:
            rows.append(Row(f"(3) ... {name}, float32 (`--precision float32`)", f"{per_s['lesson']:.1f} steps/s",
                            f"{per_s['ours, float32']:.1f} steps/s", f"{speedup(times, 'lesson', 'ours, float32'):.2f}x"))
        for label, grower in growers.items():
            rows.append(Row(f"(3) ... {name}, {label}: ran as '{grower.path}'", f"{per_s['lesson']:.1f} steps/s",
                            f"{per_s[label]:.1f} steps/s", f"{speedup(times, 'lesson', label):.2f}x"))
        flops = step_flops(preset.channels, preset.hidden) * size * size
        for label in [*roofs, *growers]:
            if label not in per_s:
                continue
            label_roof = roofs.get(label, roof)
            kind = "bf16" if label == "ours" and mixed else "fp32"
            roofline.append(Row(f"(5) grow FLOP/s / {kind} matmul FLOP/s ({label_roof / 1e9:.0f} GFLOP/s), {name} preset, "
                                f"{step_flops(preset.channels, preset.hidden):.0f} FLOP/cell/step ({label})",
                                f"{flops * per_s['lesson'] / roof:.2%} (fp32 roof)", f"{flops * per_s[label] / label_roof:.2%}",
                                f"{per_s[label] / per_s['lesson']:.2f}x"))
            executed = executed_step_flops(preset.channels, preset.hidden)
            roofline.append(Row(f"(5) ... the same, counting the FLOPs our fused kernel executes ({executed:.0f} FLOP/cell/step)",
                                "-", f"{executed * size * size * per_s[label] / label_roof:.2%}", "-"))
        info[name] = per_s
    return rows, roofline, info


# ----------------------------------------------------------------------------- memory (in a fresh process)


def memory_probe(spec: dict) -> dict:
    """One training iteration in this (fresh) process; returns the extra memory its peak needed, in MiB.

    CUDA: torch.cuda.max_memory_allocated over what was allocated before the
    iteration (tensors only, not the caching allocator's slack). CPU (Linux):
    free heap is handed back (malloc_trim), the kernel's peak-RSS mark is reset
    (/proc/self/clear_refs), and the figure is the peak resident set during the
    iteration over the resident set just before it: every page the iteration
    touched, allocator overhead included.
    """
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    config = TrainConfig(size=spec["size"], batch=spec["batch"], pool_size=spec["batch"], steps_min=spec["steps"],
                         steps_max=spec["steps"], grad_checkpoint=spec["checkpoint"], device=spec["device"],
                         target_size=min(128, 2 * spec["size"]))
    trainer = Trainer(load_target(TARGET, config.target_size), config, log=lambda m: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        trainer.train_step()
        torch.cuda.synchronize()
        return {"mib": (torch.cuda.max_memory_allocated() - before) / 2**20, "exact": True}
    import ctypes
    import re

    def status(field: str) -> int:
        return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
        exact = True
    except OSError:
        exact = False  # the peak may then predate the iteration: a lower bound
    before = status("VmRSS")
    trainer.train_step()
    return {"mib": (status("VmHWM") - before) / 2**20, "exact": exact}


def measure_memory(spec: dict) -> float:
    # glibc keeps freed blocks under its mmap threshold resident, so RSS would count allocator slack;
    # with every block of 64 KiB or more mmapped, a freed tensor leaves RSS at once and the peak is live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, __file__, "--memory-probe", json.dumps(spec)], capture_output=True, text=True,
                         check=True, cwd=ROOT, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["exact"]:
        print(f"note: could not reset the peak-RSS mark for {spec}; the figure is a lower bound", file=sys.stderr)
    return result["mib"]


def memory_rows(sizes: Sizes, device: torch.device, threads: int) -> list[Row]:
    """(4) texture preset, patch loss: peak extra memory of one iteration, with and without checkpointing."""
    base = {"device": str(device), "threads": threads, "size": sizes.memory_size, "batch": sizes.memory_batch}
    n = sizes.memory_steps
    plain = measure_memory({**base, "steps": n, "checkpoint": False})
    ckpt = measure_memory({**base, "steps": n, "checkpoint": True})
    ckpt_half = measure_memory({**base, "steps": n // 2, "checkpoint": True})
    what = "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS over RSS before, fresh process, blocks mmapped"
    shape = f"{sizes.memory_size}x{sizes.memory_size}, batch {sizes.memory_batch}"
    return [
        Row(f"(4) train peak memory, texture preset, patch loss, {shape}, {n} steps ({what})",
            f"{plain:.0f} MiB (no checkpointing)", f"{ckpt:.0f} MiB (grad_checkpoint)", f"{plain / ckpt:.1f}x"),
        Row(f"(4) ... grad_checkpoint, {n // 2} steps against {n} steps: growth with rollout length",
            f"{ckpt_half:.0f} MiB ({n // 2} steps)", f"{ckpt:.0f} MiB ({n} steps)",
            f"{ckpt / ckpt_half:.2f}x more for 2x the steps"),
    ]


# ----------------------------------------------------------------------------- the table


def machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        tf32 = f"TF32 conv {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}"
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {tf32}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, {threads} torch thread(s), torch {torch.__version__}"


def show_progress(rows: list[Row], started: float) -> None:
    """Each part's rows on stderr as soon as they are measured: a run cut off by a time limit still tells something."""
    for row in rows:
        print(f"[{time.perf_counter() - started:.0f} s] {row.label}: {row.baseline} | {row.ours} | {row.ratio}",
              file=sys.stderr, flush=True)


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print()
    print("| measurement | baseline | ours | ratio: baseline / ours (time, memory) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.label} | {row.baseline} | {row.ours} | {row.ratio} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks that every row runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile paths (slow to compile on a CPU)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out row 4 (it runs three fresh processes)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(json.loads(args.memory_probe))))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    sizes = Sizes.pick(args.quick, device.type == "cuda")
    compile_too = args.compile or device.type == "cuda"
    started = time.perf_counter()

    roof = matmul_flops(sizes.matmul, device)
    rows, _, train_info = training_rows(sizes, device, device.type == "cuda")  # Trainer.compile is CUDA-only
    graphed, graph_info = graph_rows(sizes, device, train_info["lesson"])
    rows += graphed
    show_progress(rows, started)
    grow_rows, roof_rows, grow_info = inference_rows(sizes, device, compile_too, roof)
    show_progress(grow_rows + roof_rows, started)
    rows += grow_rows
    if not args.skip_memory:
        rows += memory_rows(sizes, device, threads)
        show_progress(rows[-2:], started)
    rows += roof_rows

    command = "python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print_table(rows, f"nca_gradio speed vs the original lesson: {machine(device, threads)}\n\n`{command.strip()}`"
                      f"{' (QUICK: toy sizes)' if args.quick else ''}, {time.perf_counter() - started:.0f} s")
    if device.type == "cuda" and not args.quick:
        best_grow = max(v for k, v in grow_info["texture"].items() if k != "lesson")
        print()
        print(f"GPU targets: texture 256x256 growth {best_grow:.0f} steps/s (target {GROW_TARGET_STEPS_PER_S:.0f}): "
              f"{'MET' if best_grow >= GROW_TARGET_STEPS_PER_S else 'NOT MET'}; "
              f"training {train_info['best_train_speedup']:.2f}x the lesson (target {TRAIN_TARGET_SPEEDUP:.0f}x): "
              f"{'MET' if train_info['best_train_speedup'] >= TRAIN_TARGET_SPEEDUP else 'NOT MET'}; "
              f"GPU recipe {graph_info['graph_iters_per_s']:.0f} it/s ({graph_info['graph_path']}; target "
              f"{GRAPH_TARGET_ITERS_PER_S:.0f}): {'MET' if graph_info['graph_iters_per_s'] >= GRAPH_TARGET_ITERS_PER_S else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
