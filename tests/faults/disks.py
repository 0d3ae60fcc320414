"""A data folder whose writes can be refused, as a full or read-only disk refuses them.

Where this machine lets the tests mount (root, or a namespace allowing it), the folder is a
small tmpfs of its own: filled with a file until ENOSPC, remounted read-only, given back.
Elsewhere the fault is injected into the gitopsd processes the test starts
(`inject/sitecustomize.py`: their writes under the folder fail with the errno a switch file
holds) and the state store is kept outside the folder, since SQLite's own writes cannot be
reached that way. `method` says which was used; the tests print it, so nothing is skipped
silently. GITOPSD_TEST_NO_MOUNT=1 forces injection (to check that path on a machine that
mounts).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

INJECT = Path(__file__).with_name("inject")
SIZE = "8m"


class Disk:
    """The folder `folder`, faults on demand; `close()` unmounts it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._switch = folder.with_name(folder.name + ".fault")
        self.method = "tmpfs mount" if self._mount() else "injected OSError"
        print(f"fault on {folder}: {self.method}")  # shown with -rA and on failure

    @property
    def mounted(self) -> bool:
        return self.method == "tmpfs mount"

    @property
    def state(self) -> str | None:
        """The --state to give gitopsd: None (the data folder's own) when mounted."""
        return None if self.mounted else f"sqlite:///{self.folder.parent / 'state.db'}"

    def env(self) -> dict[str, str]:
        """What a gitopsd process needs in its environment for injected faults to reach it."""
        if self.mounted:
            return {}
        path = os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
        return {
            "PYTHONPATH": path,
            "GITOPSD_TEST_FAULT": str(self._switch),
            "GITOPSD_TEST_FAULT_DIR": str(self.folder),
        }

    def fill(self) -> None:
        """Fill the folder's disk: a file of zeros until ENOSPC."""
        if not self.mounted:
            self._switch.write_text(str(errno.ENOSPC))
            return
        with (self.folder / "filler").open("wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()

    def read_only(self) -> None:
        if not self.mounted:
            self._switch.write_text(str(errno.EROFS))
            return
        subprocess.run(["mount", "-o", "remount,ro", str(self.folder)], check=True)

    def heal(self) -> None:
        """Space and writes given back."""
        if not self.mounted:
            self._switch.unlink(missing_ok=True)
            return
        subprocess.run(["mount", "-o", "remount,rw", str(self.folder)], check=True)
        (self.folder / "filler").unlink(missing_ok=True)

    def close(self) -> None:
        self._switch.unlink(missing_ok=True)
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)

    def _mount(self) -> bool:
        if os.environ.get("GITOPSD_TEST_NO_MOUNT") == "1":
            return False
        command = ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs"]
        try:
            done = subprocess.run([*command, str(self.folder)], capture_output=True, check=False)
        except FileNotFoundError:
            return False
        return done.returncode == 0
