import json
import subprocess
import sys

import pytest

from ternkit.cli import main


def test_train_then_eval_json(tmp_path, capsys):
    out = tmp_path / "iris.tern"
    assert main(["train", "--dataset", "iris", "--model", "mlp:16", "--epochs", "40", "--batch-size", "16",
                 "--lr", "1e-2", "--seed", "1", "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((tmp_path / "iris.metrics.json").read_text())
    assert metrics["bits_per_weight"] == 2.0 and metrics["train_seconds"] > 0 and len(metrics["epochs"]) == 40
    capsys.readouterr()
    assert main(["eval", str(out), "--dataset", "iris", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 150 and r["accuracy"] >= 0.9 and sum(map(sum, r["confusion"])) == 150


@pytest.mark.parametrize("argv,needle", [
    (["train", "--dataset", "nope"], "unknown dataset"),
    (["train", "--dataset", "csv:/no/such.csv"], "no such file"),
    (["train", "--model", "mlp:abc", "--dataset", "iris"], "cannot read layer"),
    (["train", "--epochs", "0", "--dataset", "iris"], "--epochs"),
    (["train", "--dataset", "iris", "--model", "cnn"], "image input"),
    (["train", "--method", "magic"], "invalid choice"),
    (["train", "--dataset", "iris", "--conntra-kernel", "fast"], "invalid choice"),
    (["eval", "/no/such.tern"], "no such file"),
])
def test_bad_input_exit_2_one_line(argv, needle, tmp_path, capsys):
    code = main(argv + ["--out", str(tmp_path / "m.tern")] if argv[0] == "train" else argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_conntra_kernel_choice_is_the_same_rule(tmp_path, capsys):
    """`--conntra-kernel torch|native`: both train (the same rule, float rounding apart), each reproducible."""
    from ternkit.core import load_model
    from ternkit.trainer import native

    kernels = ["torch"] + (["native"] if native.library() is not None else [])
    acc = {}
    for kernel in kernels:
        for run in (1, 2):
            out = tmp_path / f"{kernel}{run}.tern"
            assert main(["train", "--dataset", "iris", "--model", "mlp:16", "--epochs", "30", "--batch-size", "16",
                         "--lr", "1e-2", "--quiet", "--conntra-kernel", kernel, "--out", str(out)]) == 0
        a, b = (load_model(tmp_path / f"{kernel}{r}.tern") for r in (1, 2))
        assert all((la.weight == lb.weight).all() for la, lb in zip(a.weight_layers, b.weight_layers, strict=True))
        acc[kernel] = 1 - json.loads((tmp_path / f"{kernel}1.metrics.json").read_text())["train_error"]
    assert all(a >= 0.85 for a in acc.values()), acc


def test_nan_csv_and_single_class(tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text("label,a,b\n0,1,2\n1,nan,3\n0,1,1\n1,2,2\n")
    assert main(["train", "--dataset", f"csv:{p}", "--out", str(tmp_path / "m.tern"), "--quiet"]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not (tmp_path / "m.tern").exists()


def test_eval_rejects_pickle(tmp_path, capsys):
    import pickle
    p = tmp_path / "evil.tern"
    p.write_bytes(pickle.dumps(object))
    assert main(["eval", str(p), "--dataset", "iris"]) == 2
    assert "not a ternkit model" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "ternkit", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--method" in r.stdout and "conntra" in r.stdout


def test_top_level_help_lists_every_command_without_loading_torch():
    code = ("import sys, contextlib, io\nfrom ternkit.cli import main, COMMANDS\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n    rc = main(['--help'])\n"
            "print(rc, all(c in buf.getvalue() for c in COMMANDS), 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["0", "True", "False"], r.stdout + r.stderr
