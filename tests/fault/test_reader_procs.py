"""The reader tests' forked children: a descriptor they inherit is released without its number
being handed out again.

A Python object inherited from the parent (under pytest's fd capture, `sys.stdout` itself) keeps
writing to its descriptor number; had the child freed that number, the next file the child opens
(SQLite's `-shm`, say) would take it and receive the writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.reader_procs import keep_only_fds

FILES_THE_CHILD_OPENS = 32  # more than the writer's lock, database, -wal and -shm twice over


def test_a_forked_child_never_reuses_a_number_an_inherited_file_object_still_writes_to(tmp_path: Path):
    """Files the child opens after keep_only_fds stay empty when an inherited file object writes."""
    stray = (tmp_path / "stray.log").open("w")  # stands for pytest's captured stdout
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            keep_only_fds(w)
            opened = [os.open(tmp_path / f"file-{i}", os.O_RDWR | os.O_CREAT, 0o600)
                      for i in range(FILES_THE_CHILD_OPENS)]
            stray.write("a log line\n")
            stray.flush()
            result = {"reused": stray.fileno() in opened,
                      "written": [i for i, fd in enumerate(opened) if os.fstat(fd).st_size]}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as answer:
        result = json.loads(answer.read() or '{"error": "child died"}')
    os.waitpid(pid, 0)
    stray.close()
    assert result == {"reused": False, "written": []}
    assert (tmp_path / "stray.log").read_text() == ""  # the child's writes went to /dev/null
