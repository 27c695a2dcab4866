"""bench/qemu_insn_plugin.c, the TCG plugin bench/qemu_insn.py counts aarch64 instructions
with: built by the Makefile, loaded by Debian's qemu-aarch64, it counts a loop of known length
exactly between two markers and attributes it to the loop's code page."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.targets

PLUGIN = REPO / "build" / "qemu-insn" / "libqemu_insn.so"
LOOPS = 1_000_000
# two instructions per iteration (subs, b.ne), between two marker "system calls" (4000)
PROGRAM = f"""
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {{
  long n = {LOOPS};
  syscall(4000, 7, 1);
  __asm__ volatile("1: subs %0, %0, #1\\n b.ne 1b" : "+r"(n));
  syscall(4000, 8, 1);
  return 0;
}}
"""


def test_plugin_counts_a_known_loop(tmp_path):
    for tool in ("qemu-aarch64", "aarch64-linux-gnu-gcc", "make"):
        assert shutil.which(tool), f"{tool} not installed: run `make cross-tools`"
    subprocess.run(
        ["make", "-s", "-C", str(REPO), str(PLUGIN.relative_to(REPO))], check=True, timeout=120
    )
    (tmp_path / "loop.c").write_text(PROGRAM)
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O1", "-o", tmp_path / "loop", tmp_path / "loop.c"], check=True
    )
    counts = tmp_path / "counts.txt"
    subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-plugin",
         f"{PLUGIN},out={counts}", tmp_path / "loop"],
        check=True, timeout=60,
    )  # fmt: skip
    lines = [line.split() for line in counts.read_text().splitlines()]
    marks = {int(v[1]): int(v[2]) for v in lines if v[0] == "mark"}
    # the loop plus the libc syscall() wrapper around the second marker (a few dozen)
    assert 2 * LOOPS <= marks[8] - marks[7] <= 2 * LOOPS + 100, marks
    pages = {lab: {} for lab in (7, 8)}
    for v in lines:
        if v[0] == "page":
            pages[int(v[1])][int(v[2])] = int(v[3])
    grew = {p: n - pages[7].get(p, 0) for p, n in pages[8].items()}
    assert max(grew.values()) >= 2 * LOOPS, grew  # one page (main's) executed the loop
    assert int(lines[-1][1]) >= marks[8] and lines[-1][0] == "total"
