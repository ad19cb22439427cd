"""`run` with a method that refines its codes step by step: each step's reconstruction is scored."""
from __future__ import annotations

import json

import pytest

from e4e_bench.cli import main
from tests.official_checkpoints import write_official_checkpoint
from tests.test_run import RUN_DOMAIN, setup  # noqa: F401  (the fixture)
from tests.conftest import make_tiny_generator


def test_run_scores_every_refinement_step(setup):  # noqa: F811
    tmp_path, files = setup
    iterations = 3
    restyle = write_official_checkpoint(tmp_path / "restyle.pt", "restyle_psp", make_tiny_generator())
    assert main(["run", "--methods", "e4e,restyle_psp", "--domain", RUN_DOMAIN.name, "--data", str(tmp_path / "data"),
                 "--checkpoint", f"e4e={files['e4e']}", "--checkpoint", f"restyle_psp={restyle}",
                 "--option", f"restyle_psp.iterations={iterations}", "--metrics", "l2", "--out", str(tmp_path / "run"),
                 "--device", "cpu", "--batch-size", "4"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    restyle_values, e4e_values = (summary["methods"][m]["values"] for m in ("restyle_psp", "e4e"))
    steps = [restyle_values[f"l2_step{t}"]["mean"] for t in range(1, iterations + 1)]
    assert steps[-1] == pytest.approx(restyle_values["l2"]["mean"], rel=1e-6)  # the last step is the inversion
    assert len(set(steps)) == iterations
    assert not any(key.startswith("l2_step") for key in e4e_values)
    table = (tmp_path / "run" / "tables" / "results.md").read_text()
    assert "L2-step1" in table and "L2-step3" in table
