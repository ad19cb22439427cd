"""The quickstart notebook runs top to bottom under `jupyter nbconvert --execute`, on a smaller run, and is
committed without outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"
# Papermill's convention: this cell goes after the one tagged "parameters" and overrides its values.
SMALL_RUN = 'N_IMAGES = 8\nMETHODS = ("e4e", "psp")'
FIGURES = 3  # the trade-off plot, the qualitative grid, the edit grid


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_under_nbconvert_showing_every_figure_and_no_progress_bar(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    notebook.cells.insert(parameters + 1, nbformat.v4.new_code_cell(SMALL_RUN, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(notebook, tmp_path / "quickstart.ipynb")
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "notebook", "--output",
                    "executed.ipynb", "quickstart.ipynb"], cwd=tmp_path, check=True, capture_output=True, timeout=600)

    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    figures = [o for o in shown if "text/markdown" not in o.data]  # all but the results table
    assert len(figures) == FIGURES and all("image/png" in o.data for o in figures)
    assert not [o for o in outputs if o.output_type == "stream" and "\r" in o.text]  # tqdm redraws with \r
    assert (tmp_path / "runs" / "quickstart" / "summary.json").is_file()
