"""The hostile-input battery: every class of attack or malformed input the security tests try, how many cases
each class holds, and how many were handled (one line, exit 2, no files, or -- for text that is valid data --
inert output). Runs the real tests (pytest, junit XML) and counts the characters and fields each one tries.

    python benchmarks/hostile.py [--mcu] [--out benchmarks/results/hostile.json]

`--mcu` adds the Cortex-M4 cases (arm-none-eabi-gcc and qemu-system-arm must be installed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/core/test_hostile_text.py", "tests/core/test_hostile_inputs.py", "tests/export/test_hostile_build.py",
         "tests/export/test_hostile_graph.py", "tests/ternkit/test_validation.py::"
         "test_export_without_a_format_prints_one_line_on_stderr"]


def _tries() -> dict[str, tuple[str, int, str]]:
    """test function -> (class, cases it tries, what they are), from the tests' own tables."""
    sys.path[:0] = [str(ROOT / "tests")]
    from core import test_hostile_inputs as inputs  # noqa: PLC0415
    from core import test_hostile_text as text  # noqa: PLC0415
    from export import test_hostile_graph as graph  # noqa: PLC0415

    n = len(text.ALL)
    return {
        "test_every_character_in_a_node_name_is_accepted_only_by_the_grammar":
            ("code injection: node names", n * 2, f"{n} characters x 2 positions x (save, load of a crafted file)"),
        "test_names_the_tracer_and_the_spec_networks_make_pass_the_grammar":
            ("code injection: node names", 0, "every example model, 3 spec networks, torch module names mapped"),
        "test_c_comment_keeps_every_character_inert":
            ("code injection: generated C", n + 5, f"{n} characters + 5 attacks as C comments, compiled with cc"),
        "test_hostile_labels_and_dataset_names_compile_to_the_clean_models_symbols":
            ("code injection: generated C", n * 2 * 2 * 3,
             f"{n} characters x 2 fields (labels, dataset name) x 2 files (model.h, model.c) x 3 builds, "
             "symbols compared with a clean model's"),
        "test_the_issues_attack_is_refused_by_simulate_and_export":
            ("code injection: generated C", 4, "the attack through simulate c, export c, export onnx, report"),
        "test_hostile_labels_run_through_simulate_c_and_nothing_else_runs":
            ("code injection: generated C", 1, "labels holding the attack, built and run by simulate --backend c"),
        "test_hostile_labels_through_onnx_and_the_lava_graph":
            ("code injection: ONNX, Lava graph", n, f"{n} characters in labels: onnx checker, onnxruntime, graph file"),
        "test_markdown_and_chart_text_is_inert":
            ("report text: Markdown, charts, terminal", 3 * n, f"{n} characters x (md, md_code, plain)"),
        "test_hostile_target_names_make_a_plain_report":
            ("report text: Markdown, charts, terminal", 5,
             "target TOML names: mathtext, HTML, pipes, NUL/newline, 254 chars"),
        "test_a_100000_character_name_is_cut_in_its_message": ("long names in messages", 2, "model node, cut()"),
        "test_terminal_output_holds_no_control_characters":
            ("report text: Markdown, charts, terminal", 2,
             "escape sequences in labels (eval) and target names (report)"),
        "test_every_graph_field_is_refused_by_the_loader":
            ("graph-file fields", 1, f"one of {len(graph.CASES)} fields, refused by load_graph + check_graph_for"),
        "test_every_graph_field_is_checked_before_lava_starts":
            ("graph-file fields", 1, f"one of {len(graph.CASES)} fields, each refused"),
        "test_another_models_graph_is_refused_with_or_without_its_fingerprint":
            ("graph-file fields", 3, "another model's graph: fingerprint, none, a claimed upgrade"),
        "test_a_version_1_graph_must_match_the_models_weights": ("graph-file fields", 2, "own model, another"),
        "test_seeds_out_of_range_are_one_line": ("numeric overflow", 1, "a seed"),
        "test_the_largest_seed_trains": ("numeric overflow", 1, "2^32 - 1 trains"),
        "test_deeply_nested_split_specs_are_one_line": ("recursion", 1, "a nesting depth"),
        "test_a_few_nested_splits_still_load": ("recursion", 1, "3 nested splits load"),
        "test_nul_bytes_in_dataset_specs_are_one_line": ("NUL bytes", 1, "a spec"),
        "test_the_pipeline_file_is_checked_whole_before_stage_1":
            ("pipeline checked whole", 1, f"one of {len(inputs.PIPELINES)} settings (NUL, range, names)"),
        "test_a_checkpoint_resumes_under_a_memory_limit": ("bounded checkpoint reads", 1, "RLIMIT_AS 4 GiB"),
        "test_a_checkpoint_larger_than_its_network_could_write_is_refused":
            ("bounded checkpoint reads", 3, "own network, beyond its limit, a bigger network"),
        "test_an_untraceable_model_is_refused_before_training": ("refused early, no files", 1, "a user model"),
        "test_a_provenance_config_that_is_not_an_object_is_refused":
            ("refused early, no files", 2, "refused, then --calibrate given"),
        "test_export_without_a_format_prints_one_line_on_stderr": ("refused early, no files", 1, "ternkit export"),
        "test_cc_true_is_one_line": ("builds without output", 2, "CC=true, with and without --build"),
        "test_a_toolchain_that_writes_nothing_is_one_line": ("builds without output", 1, "a fake Arm toolchain"),
        "test_every_command_takes_relative_and_absolute_paths":
            ("relative paths", 10, "train, eval x2, export onnx/c/lava, simulate c/onnx, report, pipeline"),
        "test_cortex_m4_build_takes_relative_and_absolute_paths": ("relative paths", 1, "simulate cortex-m4 --build"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mcu", action="store_true", help="also the Cortex-M4 cases (needs the Arm toolchain and qemu)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hostile.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        marks = ["-m", "not slow and not install"] if args.mcu else []
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *marks, *FILES]
        subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
        cases = ET.parse(xml).getroot().iter("testcase")
        results = [(c.get("name").split("[")[0], not any(x.tag in ("failure", "error") for x in c),
                    any(x.tag == "skipped" for x in c)) for c in cases]
    tries = _tries()
    classes: dict[str, dict] = {}
    for name, ok, skipped in results:
        cls, n, what = tries.get(name, ("other", 1, name))
        row = classes.setdefault(cls, {"tests": 0, "passed": 0, "skipped": 0, "cases": 0, "what": []})
        row["tests"] += 1
        row["skipped"] += skipped
        row["passed"] += ok and not skipped
        row["cases"] += n if not skipped else 0
        if what not in row["what"]:
            row["what"].append(what)
    print(f"{'class':40} {'tests':>5} {'passed':>6} {'skipped':>7} {'cases tried':>11}")
    for cls, r in classes.items():
        print(f"{cls:40} {r['tests']:5} {r['passed']:6} {r['skipped']:7} {r['cases']:11,}")
    total = {k: sum(r[k] for r in classes.values()) for k in ("tests", "passed", "skipped", "cases")}
    print(f"{'total':40} {total['tests']:5} {total['passed']:6} {total['skipped']:7} {total['cases']:11,}")
    from ternkit.core.atomic import write_text

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps({"command": " ".join(["python", "benchmarks/hostile.py"] + sys.argv[1:]),
                                          "classes": classes, "total": total}, indent=1) + "\n")
    return 0 if total["passed"] + total["skipped"] == total["tests"] else 1


if __name__ == "__main__":
    sys.exit(main())
