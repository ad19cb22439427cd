"""The runner: every method inverts one image set, one metrics pipeline scores them all.

A run directory (see `reporting/report.py` for its layout) is written stage by stage: the inputs,
then per method its inversion (kept batch by batch), its edited reconstructions and its scores
(`methods/<method>/result.json`), then the summary, tables and plots. `resume=True` reuses what
is finished; what was produced under other settings is refused, never mixed in. The preflight
(`plan.plan_run`) has checked every method, option, file and metric before any of this starts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from e4e_bench import __version__
from e4e_bench.data import from_uint8, list_images, readable_images, save_images
from e4e_bench.distributed import start_process_group
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import InversionMethod, build_method
from e4e_bench.metrics.registry import MetricContext
from e4e_bench.pipeline.fingerprint import check_fingerprint, file_identity, method_fingerprint
from e4e_bench.pipeline.inversion import invert_folder, write_inversion
from e4e_bench.pipeline.plan import TOY_IMAGES, UNCOMPARED, RunSettings, plan_run
from e4e_bench.pipeline.scoring import STEPS_DIR, BatchWork, MethodScores, Scorer
from e4e_bench.pipeline.sweep import Sweep, sweep_summary
from e4e_bench.io import write_text
from e4e_bench.reporting.report import build_report, method_dir
from e4e_bench.reporting.results_files import json_safe, write_per_image_csv
from e4e_bench.reporting.run_results import CONFIG_FILE, PER_IMAGE_FILE, MethodResult, RunSummary, recorded_path

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
AFRESH = "rerun without --resume, or choose another --out"


def prepare_inputs(settings: RunSettings, domain: Domain, out: Path) -> tuple[Path, dict[str, str]]:
    """The folder of images to invert: the toy test split rendered, the (first N) readable images of --data copied,
    or --data itself; and file name -> reason for the unreadable images left out."""
    if settings.data is None:
        from e4e_bench.toy.render import toy_photos

        inputs = out / "inputs"
        count = settings.n_images or TOY_IMAGES
        if len(list(inputs.glob("*.png"))) != count:
            pixels = toy_photos(count, domain.resolution, seed=0, split="test")
            save_images(from_uint8(pixels), [inputs / f"{i:05d}.png" for i in range(count)])
        return inputs, {}
    data = settings.data
    if settings.align:
        from e4e_bench.faces.align import aligned_folder

        data = aligned_folder(settings.data, out / "aligned", domain)
    paths, unreadable = readable_images(list_images(data)[: settings.n_images])
    if settings.n_images is None and not unreadable:
        return data, unreadable
    inputs = out / "inputs"
    for path in paths:
        if not (inputs / path.name).is_file():
            inputs.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, inputs / path.name)
    return inputs, unreadable


def check_run_dir(settings: RunSettings, out: Path, resume: bool) -> None:
    """A run directory holds one run: continuing it needs --resume and the same settings."""
    config = out / CONFIG_FILE
    if not config.is_file():
        if resume and out.is_dir() and any(out.iterdir()):
            raise E4EBenchError(f"{out} holds no run to resume (no {CONFIG_FILE}); choose another --out")
        if out.is_dir() and any(out.iterdir()):
            raise E4EBenchError(f"{out} is not empty and holds no run; choose another --out")
        return
    if not resume:
        raise E4EBenchError(f"{out} holds an earlier run; pass --resume to continue it, or choose another --out")
    stored = {k: str(v) for k, v in json.loads(config.read_text())["settings"].items() if k not in UNCOMPARED}
    current = {k: str(v) for k, v in settings.recorded().items() if k not in UNCOMPARED}
    check_fingerprint(stored, current, out, AFRESH)


def environment(device: torch.device) -> dict[str, str]:
    import numpy

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"e4e_bench": __version__, "git_commit": commit, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "device": f"{device} ({name})"}


class Benchmark:
    """One run: `Benchmark(settings, resume).run()` writes the run directory and returns its summary.

    Under torchrun the ranks share each method's inversion batch by batch; rank 0 gathers the
    kept batches, scores them and alone writes the results (the other ranks return None).
    """

    def __init__(self, settings: RunSettings, resume: bool = False):
        self.settings = settings
        self.resume = resume
        self.plan = plan_run(settings)
        self.domain = self.plan.domain
        self.out = Path(settings.out)
        check_run_dir(settings, self.out, resume)
        self.group = start_process_group(settings.device)
        self.device = self.group.device
        self.environment = environment(self.device)
        self.context = MetricContext(device=self.device, domain=self.domain, pretrained=not settings.random_weights,
                                     seed=settings.seed)
        self.scorer: Scorer | None = None  # once the inputs are known

    def run(self) -> RunSummary | None:
        try:
            return self._run()
        finally:
            self.group.close()

    def _run(self) -> RunSummary | None:
        main = self.group.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.inputs, self.unreadable = prepare_inputs(self.settings, self.domain, self.out)
            self._write_config()
        self.inputs = self.group.all_gather_object(self.inputs if main else None)[0]  # rank 0's folder
        self.scorer = Scorer(self.plan, self.context, self.inputs, self.settings.batch_size, self.environment["device"])
        summary = RunSummary(domain=self.domain.name, label=self.settings.label or self.out.resolve().name)
        per_image: dict[tuple[str, str], dict[str, float]] = {}
        finished: dict[str, tuple[InversionMethod, dict[str, str], MethodScores]] = {}  # for the sweep
        for name in self.settings.methods:
            try:
                done = self._method(name)
            except E4EBenchError as err:
                log.error("%s failed: %s", name, err)
                summary.methods[name] = MethodResult(status="failed", reason=str(err))
                done = None
            self.group.barrier()
            if done is not None:
                method, fingerprint, scores = done
                finished[name] = done
                summary.methods[name] = MethodResult(values=scores.values)
                summary.metrics.update(scores.info)
                per_image.update({(name, image): row for image, row in scores.per_image.items()})
        if not main:
            return None
        summary.save(self.out)
        write_per_image_csv(self.out / PER_IMAGE_FILE, per_image, first_columns=("method", "image"))
        build_report([self.out], self.out, self.settings.grid_images)
        if self.settings.sweep:  # after the plain results are written: an interrupted sweep loses none of them
            self._sweep(finished, summary.label)
            build_report([self.out], self.out, self.settings.grid_images)
        return summary

    def _write_config(self) -> None:
        config = {
            "settings": self.settings.recorded(),
            "data": recorded_path(self.inputs, self.out),
            "unreadable_images": self.unreadable,  # left out of the run
            "domain": dataclasses.asdict(self.domain),
            "metrics": list(self.plan.metrics),
            "unavailable_metrics": self.plan.unavailable,
            "edit": {"spec": self.domain.default_edit, "name": self.domain.default_edit_name,
                     "factor": self.domain.default_edit_factor},
            "files": {role: {"path": str(path), "identity": file_identity(path)} for role, path in self.plan.files.items()},
            "environment": self.environment,
        }
        write_text(self.out / CONFIG_FILE, json.dumps(json_safe(config), indent=2, default=str) + "\n")

    def _sweep(self, methods: dict[str, tuple[InversionMethod, dict[str, str], MethodScores]], label: str) -> None:
        """Each finished method along its dial and at each edit strength: `sweep.json` and `sweep/`; a
        method whose sweep fails is a failed row with its reason."""
        strengths = self.settings.edit_strengths or self.domain.edit_strengths
        sweep = Sweep(self.scorer, self.out, strengths, self.resume, progress=self.group.progress)
        swept, failed = {}, {}
        for name, (method, fingerprint, plain) in methods.items():
            try:
                swept[name] = sweep.method(method, fingerprint, plain)
            except E4EBenchError as err:
                log.error("%s: its sweep failed: %s", name, err)
                failed[name] = str(err)
        sweep_summary(swept, failed, self.scorer.edit_keys(), self.domain, label).save(self.out)

    def _method(self, name: str) -> tuple[InversionMethod, dict[str, str], MethodScores] | None:
        folder = method_dir(self.out, name)
        method = build_method(
            name, domain=self.domain, checkpoint=self.settings.checkpoints.get(name), generator=self.settings.generator,
            device=self.device, options=self.settings.options.get(name), seed=self.settings.seed,
        )
        fingerprint = method_fingerprint(method, self.domain) | {"metrics": ",".join(self.plan.metrics)}
        done = folder / RESULT_FILE
        if self.resume and done.is_file():
            stored = json.loads(done.read_text())
            check_fingerprint(stored["fingerprint"], fingerprint, done, AFRESH)
            log.info("%s: finished in an earlier session, kept", name)
            return method, fingerprint, MethodScores.from_json(stored["scores"])
        work = self.scorer.batch_work(method, folder / "edits", steps=folder / STEPS_DIR)
        if self.group.distributed and not self._share_inversion(method, folder, work):
            return None
        inverted = invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size,
                                 self.resume or self.group.distributed, progress=self.group.progress, on_batch=work)
        write_inversion(inverted, method, self.domain, folder)
        scores = self.scorer.score(method, inverted, folder, work)
        write_text(done, json.dumps({"fingerprint": fingerprint, "scores": scores.to_json()}, indent=2) + "\n")
        return method, fingerprint, scores

    def _share_inversion(self, method: InversionMethod, folder: Path, work: BatchWork) -> bool:
        """Every rank inverts its share of the batches into kept parts; True on rank 0, which gathers them."""
        try:
            invert_folder(method, self.domain, self.inputs, folder, self.settings.batch_size, resume=True,
                          progress=self.group.progress, shard=(self.group.rank, self.group.world_size), on_batch=work)
            error = None
        except E4EBenchError as err:
            error = str(err)
        errors = [e for e in self.group.all_gather_object(error) if e is not None]
        if errors:
            raise E4EBenchError(errors[0])
        return self.group.is_main

