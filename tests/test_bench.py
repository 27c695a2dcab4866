"""The benchmark's timing helper: what it runs, in which order, and what it reports."""

from __future__ import annotations

import pytest

from edgecv.bench import _time_in_blocks

pytestmark = pytest.mark.integration


@pytest.mark.unit
def test_timing_alternates_blocks_with_an_untimed_run_first():
    calls: list[str] = []

    def side(name: str):
        def run() -> str:
            calls.append(name)
            return name + str(len(calls))

        return run

    (a, a_got), (b, b_got) = _time_in_blocks([side("a"), side("b")], warmup=1, repeat=7, block=3)
    # warm-up of each, then blocks of 3, 3, 1 timed runs, each block after one untimed run
    assert "".join(calls) == "ab" + "aaaabbbb" + "aaaabbbb" + "aabb"
    assert a["runs"] == b["runs"] == 7 and len(a_got) == len(b_got) == 7
    assert a_got[0] == "a4" and b_got[0] == "b8"  # what the timed runs returned, not the untimed
    assert 0 <= a["min_ms"] <= a["median_ms"] <= a["p90_ms"]


@pytest.mark.unit
def test_timing_one_function_has_no_untimed_runs_between_blocks():
    calls = []
    ((summary, got),) = _time_in_blocks([lambda: calls.append(1)], warmup=2, repeat=6, block=5)
    assert len(calls) == 8 and summary["runs"] == 6 and len(got) == 6


def test_bench_times_more_onnx_models_in_the_same_blocks(small_artifact):
    """``also``: further ONNX models (ORT's int8, in bench/run.py) timed alongside; here the
    artifact's own ONNX file, so its outputs are known to be ORT's."""
    from edgecv.artifact import read_manifest
    from edgecv.bench import bench_artifact

    onnx_path = small_artifact / read_manifest(small_artifact)["files"]["onnx"]
    row = bench_artifact(small_artifact, warmup=0, repeat=3, peak=1.0, also={"again": onnx_path})
    assert row["again"]["runs"] == row["onnxruntime"]["runs"] == row["edgecv"]["runs"] == 3
    assert row["again"]["min_ms"] > 0
    # the CPU it ran on, and the ISA that decides which kernels ran, recorded and printed
    m = row["machine"]
    assert m["cpu_model"] and isinstance(m["isa_flags"], list)
    cpuinfo = open("/proc/cpuinfo").read().split()
    assert all(flag in cpuinfo for flag in m["isa_flags"])
    assert ("avx2" in m["isa_flags"]) == ("avx2" in cpuinfo)
    from edgecv import _runtime
    from edgecv.bench import format_table, isa_class

    assert m["onednn_isa"] == (_runtime.kernel_isa() or None)
    assert m["int8_weight_bits"] in (7, 8, None)
    assert format_table([row]).splitlines()[0].startswith(f"CPU: {m['cpu_model']} ({isa_class(m)}")
    assert row["onnxruntime"]["peak_memory_mib"] >= 0


def test_operator_breakdown_sees_the_same_layers_on_both_sides(small_artifact):
    """The profiled breakdown: edgecv's offloaded convolutions and ORT's Conv nodes are the
    ONNX graph's convolutions, one call each per inference, sorted into the same kinds."""
    import onnx

    from edgecv.artifact import read_manifest
    from edgecv.bench import format_breakdown, operator_breakdown
    from edgecv.compile import local_kernel_libraries

    doc = read_manifest(small_artifact)
    graph = onnx.load(str(small_artifact / doc["files"]["onnx"])).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    ones = sum(
        1 for n in convs for a in n.attribute if a.name == "kernel_shape" and list(a.ints) == [1, 1]
    )
    b = operator_breakdown(small_artifact, runs=2)
    theirs = b["onnxruntime"]
    assert theirs["conv 1x1"]["calls"] == ones and theirs["conv kxk"]["calls"] == len(convs) - ones
    assert theirs["dense"]["calls"] == 1
    if "dnnl" in local_kernel_libraries():  # offloaded: edgecv's calls are the same layers
        ours = b["edgecv"]
        assert ours["conv 1x1"]["calls"] == ones and ours["conv kxk"]["calls"] == len(convs) - ones
        assert ours["dense"]["calls"] == 1
    assert all(b[side]["conv kxk"]["ms"] > 0 for side in ("edgecv", "onnxruntime"))
    table = format_breakdown({"model": "resnet18_v1", "breakdown": b})
    assert "conv kxk" in table and "total" in table
