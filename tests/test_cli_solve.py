"""`mfg-rl list` and `mfg-rl solve`: the real command, small sizes."""

import subprocess
import sys

import numpy as np

from mfg_rl.cli import main
from mfg_rl.solvers import Equilibrium


def test_list_names_every_problem(capsys):
    from mfg_rl import problems

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in problems.names():
        assert name in out


def test_solve_prints_summary_plots_and_saves(tmp_path):
    plot, saved = tmp_path / "lq.png", tmp_path / "lq.npz"
    result = subprocess.run(
        [sys.executable, "-m", "mfg_rl", "solve", "lq-1d", "-p", "Nx=41", "-p", "Nt=10",
         "--backend", "numpy", "--plot", str(plot), "--save", str(saved), "--quiet"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "converged" in result.stdout and "iterations" in result.stdout
    assert plot.stat().st_size > 10_000
    eq = Equilibrium.load(saved, backend="numpy")
    assert eq.u.shape == (11, 41) and np.isfinite(eq.u.numpy()).all()


def test_solve_rejects_unknown_parameter(capsys):
    assert main(["solve", "lq-1d", "-p", "Nq=3", "--quiet"]) == 1
    assert "allowed" in capsys.readouterr().err


def test_solve_method_amr_runs_from_the_cli(tmp_path, capsys):
    saved, plot = tmp_path / "amr.npz", tmp_path / "amr.png"
    assert main(["solve", "crowd-exit-1d", "-p", "Nx=64", "-p", "Nt=10", "--method", "amr", "--save",
                 str(saved), "--plot", str(plot), "--quiet"]) == 0
    assert "converged" in capsys.readouterr().out
    eq = Equilibrium.load(saved, backend="numpy")
    assert eq.diagnostics.method == "amr" and eq.u.shape == (11, 64)
    assert eq.meshes is not None and plot.stat().st_size > 10_000  # the mesh drawn over m
    assert main(["solve", "crowd-exit-1d", "-p", "Nx=64", "--method", "amr", "--coupling", "newton",
                 "--quiet"]) == 1
    assert "coupled Jacobian" in capsys.readouterr().err
    assert main(["solve", "crowd-exit-1d", "--method", "amr", "--quiet"]) == 1  # 200 cells: not 2^L
    assert "uniform level of the tree" in capsys.readouterr().err
