"""Text from a stranger's file never becomes code. Node names follow one identifier grammar (checked when a model
is built, saved and loaded); free text (labels, dataset specs, target names) reaches generated C only through
`c_comment`, Markdown only through `md`/`md_code`, charts as plain text. Every byte value 0..255 (and multi-byte
UTF-8) is tried in each field, and the generated C is compiled with the host cc: its symbols and sections are
those of a clean model's, so nothing was injected.

Real files throughout: hostile `.tern` files are written byte by byte as safetensors (bypassing the saver's
checks, as a stranger would), real compilers, onnx's checker and onnxruntime."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import load_model, save_model
from ternkit.core.errors import ArtifactError
from ternkit.core.io import model_bytes, parse_model
from ternkit.core.text import MAX_NAME, NAME, c_comment, cut, is_name, md, md_code, plain, to_name

BYTES = [chr(b) for b in range(256)]
MULTI = ["é", "€", "𝄞", "\u2028", "\u2029", "\ufeff", "\u202e", "Ω", "ｓ", "\U0001f600"]
ALL = BYTES + MULTI  # 266 characters
GRAMMAR = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
C_SAFE = re.compile(r"[A-Za-z0-9 _.,:;=+\-()\[\]<>@!&^~|{}#'%]*")
# the attack of the issue: end the comment, include stdlib, run a shell command from a constructor
PAYLOAD = ('x */\n#include <stdlib.h>\n__attribute__((constructor)) static void tk_pwn(void) { system("touch {m}"); }'
           '\n/* ??/\n// \\\n"\'')


def _rename(model, old: str, new: str) -> bytes:
    """`model`'s file with node `old` renamed `new` and nothing checked: what a hostile author writes."""
    from safetensors.numpy import load, save

    raw = model_bytes(model)
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["ternkit"])
    for node in meta["nodes"]:
        node["name"] = new if node["name"] == old else node["name"]
        node["inputs"] = [new if i == old else i for i in node["inputs"]]
    tensors = {(new + k[len(old):] if k.startswith(old + ".") else k): v for k, v in load(raw).items()}
    return save(tensors, metadata={"ternkit": json.dumps(meta)})


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and len(msg) < 400, msg[:500]
    return msg


# -- node names: one grammar, at build, save and load -----------------------------------------------------------
@pytest.mark.parametrize("where", ["end", "start"])
def test_every_character_in_a_node_name_is_accepted_only_by_the_grammar(tmp_path, where):
    """266 characters x 2 positions, each at save and at load (a crafted file)."""
    for ch in ALL:
        name = f"n{ch}" if where == "end" else f"{ch}n"
        ok = ch in GRAMMAR and not (where == "start" and ch in ".-")
        assert is_name(name) == ok, repr(name)
        model = random_mlp((4, 8, 3))
        model.nodes[0].name = name
        model.nodes[1].inputs = (name,)
        if ok:
            assert parse_model(model_bytes(model)).nodes[0].name == name
            continue
        with pytest.raises(ArtifactError, match="not a valid") as e:
            save_model(model, tmp_path / "m.tern")
        _one_line(e.value)
        assert not (tmp_path / "m.tern").exists()
        with pytest.raises(ArtifactError, match="not a valid") as e:
            parse_model(_rename(random_mlp((4, 8, 3)), "layer0", name))
        _one_line(e.value)


@pytest.mark.filterwarnings("ignore:.*BatchNorm running statistics")  # untrained networks: names only matter
def test_names_the_tracer_and_the_spec_networks_make_pass_the_grammar():
    import torch
    from op_examples import MODELS
    from torch import nn

    from ternkit import to_artifact
    from ternkit.core.ops import OPS
    from ternkit.trainer.network import build_network

    assert all(is_name(kind) for kind in OPS)  # operation kinds are written where names are
    for factory in MODELS.values():
        m = factory(np.random.default_rng(0))
        assert all(is_name(n.name) for n in m.nodes), [n.name for n in m.nodes]
    for spec, shape in (("mlp:16", (4,)), ("cnn:4-8", (1, 8, 8)), ("resnet:4-8", (1, 8, 8))):
        net = build_network(spec, shape, 3, "discrete")
        assert all(is_name(n.name) for n in to_artifact(net, shape).nodes)

    class Odd(nn.Module):  # module names torch allows but the grammar does not: mapped, not refused
        def __init__(self):
            super().__init__()
            self.add_module("a b$c", nn.Linear(4, 8))
            self.add_module("é" * 200, nn.Linear(8, 3))

        def forward(self, x):
            return getattr(self, "é" * 200)(torch.relu(getattr(self, "a b$c")(x)))

    from ternkit.nn import ternarize

    net = Odd()
    ternarize(net)
    nodes = to_artifact(net, (4,)).nodes
    assert all(is_name(n.name) for n in nodes)
    assert to_name("a b$c") == "a_b_c" and len(to_name("é" * 200)) == MAX_NAME


def test_a_100000_character_name_is_cut_in_its_message(tmp_path):
    path = tmp_path / "long.tern"
    path.write_bytes(_rename(random_mlp((4, 8, 3)), "layer0", "a" * 100_000))
    with pytest.raises(ArtifactError) as e:
        load_model(path)
    assert len(_one_line(e.value)) < 300 and "100,000 characters" in str(e.value)
    assert cut("b" * 100_000).endswith("(100,000 characters)")


# -- C: the one escaping function ---------------------------------------------------------------------------------
def _cc() -> str:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("needs a host C compiler (cc)")
    return cc


def _symbols(obj) -> tuple[list[str], list[str]]:
    """(nm's symbols, readelf's section names) of an object file."""
    nm = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    sections = subprocess.run(["readelf", "-SW", str(obj)], capture_output=True, text=True, check=True).stdout
    syms = sorted(" ".join(line.split()[-2:]) for line in nm.splitlines() if line.strip())
    return syms, sorted(re.findall(r"\] (\.\S+)", sections))


def test_c_comment_keeps_every_character_inert(tmp_path):
    """266 characters, alone and inside the attack, as C comments: the output uses the safe set only, and one
    translation unit of all of them compiles to exactly the one symbol it defines."""
    texts = [f"a{ch}b" for ch in ALL] + [PAYLOAD, "*/" * 50, "??/" * 20, "\\\n" * 10, "".join(ALL)]
    lines = []
    for t in texts:
        out = c_comment(t)
        assert C_SAFE.fullmatch(out), (t, out)
        assert "*/" not in out and "/*" not in out and "//" not in out and "??" not in out
        lines.append(f"/* {out} */")
    src = tmp_path / "t.c"
    src.write_text("\n".join(lines) + "\nint tk_only_symbol;\n")
    obj = tmp_path / "t.o"
    subprocess.run([_cc(), "-std=c99", "-Wall", "-Werror", "-c", str(src), "-o", str(obj)], check=True)
    syms, sections = _symbols(obj)
    assert [s.split()[-1] for s in syms] == ["tk_only_symbol"]
    assert not {".init_array", ".ctors", ".fini_array"} & set(sections)


def _c_object(tmp_path, model, source: str, tag: str):
    from ternkit.export.c.emit import write_c
    from ternkit.export.c.program import build_program

    prog = build_program(model, np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32), source)
    out = tmp_path / tag
    write_c(prog, out)
    obj = tmp_path / f"{tag}.o"
    subprocess.run([_cc(), "-std=c99", "-O1", "-c", "-I", str(out), str(out / "model.c"), "-o", str(obj)], check=True)
    return _symbols(obj), (out / "model.h").read_text() + (out / "model.c").read_text()


def test_hostile_labels_and_dataset_names_compile_to_the_clean_models_symbols(tmp_path):
    """Every character and the attack in the three labels and the calibration source (266 x 4 fields), through
    model.h and model.c: the object holds the same symbols and sections as the same model with plain text."""
    marker = tmp_path / "PWNED"
    payload = PAYLOAD.replace("{m}", str(marker))
    clean = random_mlp((4, 8, 3))
    hostile = random_mlp((4, 8, 3))
    third = len(ALL) // 3 + 1
    hostile.labels = [payload + "".join(ALL[i * third:(i + 1) * third]) for i in range(3)]
    reference, _ = _c_object(tmp_path, clean, "iris", "clean")
    for k, source in enumerate([payload, "".join(ALL), "".join(reversed(ALL)) + payload]):
        got, text = _c_object(tmp_path, hostile, source, f"hostile{k}")
        assert got == reference
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # what the compiler sees once comments are gone
        assert "stdlib" not in code and "system" not in code and "tk_pwn" not in code and "PWNED" not in code
    assert not marker.exists()


def test_the_issues_attack_is_refused_by_simulate_and_export(tmp_path, capsys):
    """The node-name attack of the issue, end to end: one line, exit 2, nothing compiled, run or written."""
    _cc()
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.tern"
    path.write_bytes(_rename(random_mlp((4, 8, 3)), "layer0", PAYLOAD.replace("{m}", str(marker))))
    for argv in (["simulate", str(path), "--backend", "c", "--dataset", "iris", "--limit", "5"],
                 ["export", "c", str(path), "-o", str(tmp_path / "c_out"), "--calibrate", "iris"],
                 ["export", "onnx", str(path), "-o", str(tmp_path / "m.onnx")],
                 ["report", str(path), "--dataset", "iris", "-o", str(tmp_path / "rep")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a valid node name" in err and "Traceback" not in err, err
    assert not marker.exists() and not (tmp_path / "c_out").exists() and not (tmp_path / "rep").exists()


def test_hostile_labels_run_through_simulate_c_and_nothing_else_runs(tmp_path, capsys):
    """Labels with the attack are valid labels: the host build compiles and runs them as comments only."""
    _cc()
    marker = tmp_path / "PWNED"
    model = random_mlp((4, 8, 3))
    model.labels = [PAYLOAD.replace("{m}", str(marker)) + s for s in ("a", "b", "c")]
    save_model(model, tmp_path / "m.tern")
    assert main(["simulate", str(tmp_path / "m.tern"), "--backend", "c", "--dataset", "iris", "--limit", "10",
                 "--calibrate", "iris", "--build", str(tmp_path / "b")]) == 0
    assert "bit-identical" in capsys.readouterr().out
    assert not marker.exists()
    text = (tmp_path / "b" / "model.c").read_text() + (tmp_path / "b" / "model.h").read_text()
    assert "tk_pwn" not in re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


# -- ONNX, Lava graph, Markdown, charts -----------------------------------------------------------------------------
def test_hostile_labels_through_onnx_and_the_lava_graph(tmp_path):
    """266 characters and the attack in labels: the ONNX model passes onnx's checker and runs in onnxruntime
    with the reference's predictions; the Lava graph file round-trips them as data."""
    import onnx
    import onnxruntime as ort

    from ternkit.export.lava.graph import build_graph, load_graph, save_graph
    from ternkit.export.onnx.export import export_onnx

    model = random_mlp((4, 8, 3))
    model.labels = [PAYLOAD + "".join(ALL[:130]), "".join(ALL[130:]), "\x00\n$\\nosuchcmd$"]
    export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto)
    assert all(is_name(n.name) or not n.name for n in proto.graph.node)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_array_equal(np.asarray(got).reshape(16, -1).argmax(1), model.predict(x))
    graph = build_graph(model, x)
    save_graph(graph, tmp_path / "g.lava.json")
    assert load_graph(tmp_path / "g.lava.json")["labels"] == model.labels


def test_markdown_and_chart_text_is_inert():
    """Each character, and Markdown/HTML/mathtext markup, comes out literal."""
    for ch in ALL:
        out = md(f"a{ch}b")
        assert "\n" not in out and "\r" not in out
        if ch in "\\`*_{}[]()<>#+-.!|$~&":
            assert out == f"a\\{ch}b"
        code = md_code(f"a{ch}b")
        assert code.count("`") == 2 and "|" not in code and "\n" not in code
        assert "\n" not in plain(f"a{ch}b")
    assert md("<script>alert(1)</script> | x") == "\\<script\\>alert\\(1\\)\\</script\\> \\| x"
    assert NAME.fullmatch("layer1.0.conv-2_x")


def test_hostile_target_names_make_a_plain_report(tmp_path, capsys):
    """Target names and descriptions with mathtext (`$\\nosuchcmd$`), Markdown, HTML, a table pipe and line
    breaks: the report is written (charts included) and report.md shows them escaped."""
    from ternkit.targets.spec import _specs_dir

    base = (_specs_dir() / "mcu.toml").read_text()
    model = random_mlp((4, 8, 3))
    save_model(model, tmp_path / "m.tern")
    names = ["$\\\\nosuchcmd$", "<script>x</script> | **b** `c`", "a\\nb\\u0000c", "$x^{2}$ \\\\frac{1}{0}",
             "".join(f"\\u{b:04x}" for b in range(1, 256) if chr(b) not in '"\\')]
    args = []
    for k, name in enumerate(names):
        path = tmp_path / f"t{k}.toml"
        path.write_text(base.replace('name = "mcu"', f'name = "{name}"', 1)
                        .replace('description = "', f'description = "{name} ', 1))
        args += ["--target", str(path)]
    assert main(["report", str(tmp_path / "m.tern"), "--dataset", "iris", *args, "-o", str(tmp_path / "rep")]) == 0
    md_text = (tmp_path / "rep" / "report.md").read_text()
    prose = re.sub(r"`[^`\n]*`", "", md_text)  # code spans show their text literally (no HTML, no emphasis)
    assert "<script>" not in prose and "$\\nosuchcmd$" not in prose and "\x00" not in md_text
    rows = [line for line in md_text.splitlines() if line.startswith("| ") and "script" in line]
    assert rows and all(len(re.findall(r"(?<!\\)\|", r)) == 8 for r in rows[:1]), rows
    for png in ("memory.png", "energy.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_terminal_output_holds_no_control_characters(tmp_path, capsys):
    """Labels and target names with terminal escape sequences (colour, window title, bell, backspace) are
    printed without their control characters by eval and report."""
    from ternkit.targets.spec import _specs_dir

    escape = "\x1b[31mred\x1b]0;owned\x07\x08\r"
    model = random_mlp((4, 8, 3))
    model.labels = [f"{escape}{k}" for k in range(3)]
    save_model(model, tmp_path / "m.tern")
    assert main(["eval", str(tmp_path / "m.tern"), "--dataset", "iris"]) == 0
    out = capsys.readouterr().out
    assert "red" in out and not any(ord(c) < 32 and c != "\n" for c in out), repr(out)
    toml = tmp_path / "t.toml"
    toml.write_text((_specs_dir() / "mcu.toml").read_text().replace('name = "mcu"', 'name = "\\u001b[2Jx\\u0007"', 1))
    assert main(["report", str(tmp_path / "m.tern"), "--dataset", "iris", "--target", str(toml),
                 "-o", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "[2Jx" in out and not any(ord(c) < 32 and c != "\n" for c in out), repr(out)
