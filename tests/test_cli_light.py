"""The CLI's shape: commands share library code, never each other, and `--help` imports no method."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import e4e_bench.commands

HEAVY = ("encoders", "baselines", "lpips", "pytorch_fid", "sklearn", "insightface")
COMMANDS_DIR = Path(e4e_bench.commands.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` statement of the file names, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_command_module_imports_another_command_module():
    commands = {f"e4e_bench.commands.{path.stem}" for path in COMMANDS_DIR.glob("*.py") if path.stem != "__init__"}
    for path in COMMANDS_DIR.glob("*.py"):
        others = commands - {f"e4e_bench.commands.{path.stem}"}
        assert not imported_modules(path) & others, f"{path.name} imports another command"
        assert "e4e_bench.commands" not in imported_modules(path), f"{path.name} imports the commands package"


def modules_after(argv: list[str]) -> set[str]:
    """The modules loaded by running the CLI with `argv` in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from e4e_bench.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


def test_help_and_assets_list_import_no_method_package_nor_heavy_library(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    for argv in (["--help"], ["assets", "list"]):
        modules = modules_after(argv)
        assert "e4e_bench.commands.train" in modules  # every command module is imported, and stays light
        assert heavy(modules) == [], f"{argv} imported {heavy(modules)}"


def test_train_help_still_lists_the_trainer_flags():
    out = subprocess.run([sys.executable, "-m", "e4e_bench", "train", "--method", "psp", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--max-steps" in out and "--lpips-lambda" in out


PACKAGES = {name: Path(__file__).resolve().parents[1] / name for name in ("e4e_bench", "encoders", "baselines")}


def package_imports(package: str) -> dict[Path, set[str]]:
    return {path: imported_modules(path) for path in PACKAGES[package].rglob("*.py")}


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_harness_reaches_methods_only_through_the_registry():
    for path, modules in package_imports("e4e_bench").items():
        assert not top_level(modules) & {"encoders", "baselines"}, f"{path} imports a method package"


def test_methods_import_neither_commands_nor_each_other():
    for package, other in (("encoders", "baselines"), ("baselines", "encoders")):
        for path, modules in package_imports(package).items():
            assert other not in top_level(modules), f"{path} imports {other}"
            assert not any(name.startswith("e4e_bench.commands") or name == "e4e_bench.cli" for name in modules), path
