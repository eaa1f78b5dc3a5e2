"""Timing one command as the berth-run benchmarks in scripts/bench do (they import it from
their python3 heredocs; lib.sh puts this directory on PYTHONPATH)."""
import os
import sys
import time

_null = os.open(os.devnull, os.O_RDWR)


def timed(argv):
    """(wall seconds, user+sys seconds) of argv and everything it waited for (from wait4),
    with stdin and stdout on /dev/null; ends the benchmark if argv fails."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, _null, 0), (os.POSIX_SPAWN_DUP2, _null, 1)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, ru.ru_utime + ru.ru_stime
