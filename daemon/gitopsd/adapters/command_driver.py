"""Run a component's `command` driver as a child process (SPEC section 4).

Pipeline: git -> load -> plan -> execute. The executor walks a plan and, for each step, hands a
`ports.DriverCall` to a `ports.DriverRunner`; this is the runner that touches processes. Per call:

- private files in `work_dir` (mode 0700): `<call>.inputs.json` (the rendered inputs, mode
  0600) and the path of `<call>.outputs.json` (where `apply` writes its outputs), removed when
  the call ends (files, not a folder per call: a mkdir and rmdir per step cost milliseconds
  on slow disks). `<call>` is `<environment>.<component>.<action>.<pid>-<n>`, `n` a number no
  other call of the process gets; the inputs file is created exclusively (`O_EXCL`), and a
  name already taken, by a file a crashed daemon left, is skipped;
- the environment is `base_env` (default: `os.environ` as it is at the call) without inherited
  `GITOPSD_*` variables, plus the driver's `env` setting, plus the protocol variables
  (`driver_environment`);
- the argv runs without a shell in its own process group (input values never reach the command
  line); stdout and stderr go to one pipe, read as the driver prints (by the waiting call, or
  by a lane of `run_many`), keeping only what the result can hold (`driver_output`): a driver
  printing gigabytes costs neither memory nor disk, and a call makes no file for its output;
- on timeout or cancel the group gets SIGTERM, then SIGKILL after `kill_grace` seconds; after any
  exit, processes left in the group are SIGKILLed, so a backgrounded child never outlives a call
  (`child_processes`: each call blocks until its child exits; one watchdog thread per runner
  stops the children whose time is up or whose run was cancelled);
- each group is reported as it starts: to the caller (`on_started`, which records it in the
  store), and to the runner's `reaper`, a helper process that ends the groups still running if
  gitopsd itself is killed.

Captured output is capped at `max_output` bytes (head and tail kept) and secrets are redacted
(`driver_output` says which values are secrets) before the result leaves this module, so
nothing unredacted is stored or logged. A call with `on_output` is told what its driver prints
as it prints it, redacted and capped the same way (`driver_output.LiveFeed`).

Problems a driver causes (cannot start, killed, bad outputs file) come back as
`DriverResult.error`, never as exceptions; only a `work_dir` that cannot be used raises `OSError`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gitopsd.adapters.child_processes import (
    CANCELLED,
    TIMED_OUT,
    Exit,
    Watchdog,
    Watched,
    pidfds_work,
    signal_group,
    wait_for_exit,
    wait_reading,
)
from gitopsd.adapters.driver_environment import (
    Inherited,
    largest_inputs,
    protocol_environment,
    unpassable,
)
from gitopsd.adapters.driver_lanes import Lanes
from gitopsd.adapters.driver_output import CapturedOutput, LiveFeed
from gitopsd.adapters.drivers import in_threads
from gitopsd.adapters.process_groups import start_time
from gitopsd.adapters.reaper import Reaper
from gitopsd.engine import json_limits
from gitopsd.engine.drivers import DriverSetup
from gitopsd.engine.ports import CancelSignal, DriverCall, DriverResult, OnStarted, StartedDriver
from gitopsd.errors import JsonLimitError
from gitopsd.model.manifests import CommandDriver

__all__ = ["DRIVER", "CommandDriverRunner", "CommandDriverType", "describe_duration"]

MAX_OUTPUTS_FILE = 1024 * 1024
_NOT_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_INPUTS_SUFFIX = ".inputs.json"
_OUTPUTS_SUFFIX = ".outputs.json"
_CREATE_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # O_EXCL: no symlinks
_NAME_ATTEMPTS = 10000  # as many as tempfile.mkstemp tries
_CALL_NUMBERS = itertools.count()  # next() on it is atomic: no two threads get the same number
_CALL_FILE_NAME = re.compile(r"\.(\d+)-\d+\.(?:inputs|outputs)\.json$")  # group 1: the pid


@dataclass(frozen=True)
class _Ending:
    """How the process ended, before its output and outputs file are read."""

    exit_code: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None


_EXITED = tuple(_Ending(exit_code=code) for code in range(256))  # frozen: shared by calls


class CommandDriverType:
    """The `command` driver type (`engine.drivers.DriverType`), registered as the entry point
    `command` of the `gitopsd.drivers` group, like any plugin."""

    name = "command"
    settings = CommandDriver

    def runner(self, setup: DriverSetup) -> CommandDriverRunner:
        """A runner whose call files go to `setup.work_dir`, where the files of processes
        killed before they could remove them are removed first."""
        runner = CommandDriverRunner(setup.work_dir)
        runner.remove_orphaned_files()
        return runner


DRIVER = CommandDriverType()


class CommandDriverRunner:
    """`ports.DriverRunner` for `type: command` drivers and gates; safe to call from several
    threads."""

    def __init__(
        self,
        work_dir: Path,
        *,
        max_output: int = 65536,
        kill_grace: float = 10.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.max_output = max_output
        self.base_env = base_env  # None: os.environ as it is at call time
        self._inherited: Inherited | None = None  # derived from the last snapshot seen
        self._watchdog = Watchdog(kill_grace=kill_grace)
        self._reaper = Reaper(kill_grace=kill_grace)  # ends the drivers if gitopsd is killed

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        """Run `call.argv` to completion, timeout or cancel; the call's files never remain.

        `on_started` hears of the driver's process group as soon as it is spawned (to record
        it); if it raises, the driver is killed and the exception propagates."""
        started = self._start(call, self._inherited_environment(), cancel)
        if isinstance(started, DriverResult):
            return started
        try:
            if on_started is not None:
                on_started(StartedDriver(started.pid, started.started))
            wait_reading(started.pid, started.output, started.read_output)
        except BaseException:
            self._abandon(started)
            raise
        return self._finish(started)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """Run `calls`, at most `parallelism` at once; the results in the calls' order.

        Two threads share the running drivers and each waits for whichever of its own exits
        first (`driver_lanes`), rather than a thread per driver; the inherited environment is
        read once for all the calls.
        """
        if not pidfds_work():  # before Linux 5.3: a thread per call
            return in_threads(
                self.run, calls, parallelism=parallelism, cancel=cancel, on_done=on_done
            )
        inherited = self._inherited_environment()
        lanes = Lanes(
            calls,
            start=lambda call: self._start(call, inherited, cancel),
            finish=self._finish,
            abandon=self._abandon,
            on_done=on_done,
        )
        return lanes.run(parallelism)

    def remove_orphaned_files(self) -> int:
        """Remove the call files of processes that no longer run (killed before they could
        remove them); how many. Files in a memory folder (`call_folder`) would otherwise
        stay until the machine restarts; each process's files carry its pid in their names."""
        try:
            names = os.listdir(self.work_dir)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        orphans = [
            name
            for name in names
            if (match := _CALL_FILE_NAME.search(name)) and not _process_runs(int(match[1]))
        ]
        for name in orphans:
            _remove(os.path.join(self.work_dir, name))
        return len(orphans)

    def _create_inputs_file(self, call: DriverCall) -> tuple[int, str]:
        """Create the call's inputs file (mode 0600) under a name no other call has: pid and a
        number no other call of this process gets; a name already taken (a file a crashed
        process left, another process with the same pid on a shared disk) is skipped."""
        work_dir = os.fspath(self.work_dir)
        if not os.path.isabs(work_dir):  # drivers run elsewhere: their paths must be absolute
            work_dir = os.path.abspath(work_dir)
        prefix = _scratch_prefix(work_dir, call.environment, call.component, call.action)
        prefix += f"{os.getpid()}-"
        for _ in range(_NAME_ATTEMPTS):
            path = f"{prefix}{next(_CALL_NUMBERS)}{_INPUTS_SUFFIX}"
            try:
                return os.open(path, _CREATE_EXCLUSIVE, 0o600), path
            except FileExistsError:
                continue
            except FileNotFoundError:
                # the first calls (several threads at once), or work_dir was removed: make it
                # (exist_ok: another thread may just have), then try that name again
                self.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                return os.open(path, _CREATE_EXCLUSIVE, 0o600), path
        raise FileExistsError(f"no free inputs file name in {self.work_dir}")

    def _inherited_environment(self) -> Inherited:
        """`base_env` (or `os.environ`) as it is now, with what calls derive from it.

        Reading the environment is a copy: `os.environb`, not `os.environ`, whose per-variable
        decoding costs twice as much. Filtering, finding secrets and checking that every
        variable can be passed happen once per distinct snapshot, not once per call."""
        snapshot: dict[Any, Any]
        snapshot = dict(os.environb) if self.base_env is None else dict(self.base_env)
        cached = self._inherited
        if cached is not None and cached.snapshot == snapshot:
            return cached
        if self.base_env is None:
            named = {os.fsdecode(name): os.fsdecode(value) for name, value in snapshot.items()}
        else:
            named = snapshot
        self._inherited = cached = Inherited.derive(snapshot, named)
        return cached

    def _start(
        self, call: DriverCall, inherited: Inherited, cancel: CancelSignal | None
    ) -> _Running | DriverResult:
        """Write the call's inputs file and start its driver, watched for its timeout and
        `cancel`; or the result of a call that could not start (its files already gone)."""
        begun = time.monotonic()
        call = _with_command(call)
        handle, inputs_file = self._create_inputs_file(call)
        outputs_file = inputs_file.removesuffix(_INPUTS_SUFFIX) + _OUTPUTS_SUFFIX
        try:
            _write_inputs(handle, call.inputs)
            own = protocol_environment(call, inputs_file=inputs_file, outputs_file=outputs_file)
            env = dict(inherited.env)
            env.update(own)
            problem = _prepare_state_dir(call.state_dir)
            unstartable = None if problem else unpassable(call, env, inherited, own)
            if problem is not None or unstartable is not None:
                _remove_files(inputs_file, outputs_file)
                return DriverResult(
                    None,
                    error=problem or unstartable,
                    duration=time.monotonic() - begun,
                    final=unstartable is not None,  # the same values would be refused again
                )
            output, printed_to = _output_pipe()
        except BaseException:
            _remove_files(inputs_file, outputs_file)
            raise
        try:
            process = subprocess.Popen(
                list(call.argv),
                cwd=call.cwd,
                env=env,
                stdin=_dev_null(),
                stdout=printed_to,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except (OSError, ValueError) as error:
            os.close(output)
            _remove_files(inputs_file, outputs_file)
            reason = getattr(error, "strerror", None) or str(error)
            # the folder's bytes that are not UTF-8 (a name from git) as `\xe9`: the error is
            # text for the state store and the terminal, which take UTF-8 only
            cwd = os.fsencode(call.cwd).decode(errors="backslashreplace")
            problem = f"cannot start {call.argv[0]!r} in {cwd}: {reason}"
            too_large = getattr(error, "errno", None) == errno.E2BIG  # the kernel's own count
            if too_large:
                problem += f" ({largest_inputs(call)})"
            return DriverResult(
                None, error=problem, duration=time.monotonic() - begun, final=too_large
            )
        except BaseException:
            os.close(output)
            _remove_files(inputs_file, outputs_file)
            raise
        finally:
            os.close(printed_to)  # the driver has its own copy: end of file once it is done
        started = start_time(process.pid)
        self._reaper.watch(process.pid, started)
        watched = self._watchdog.watch(process, timeout=call.timeout, cancel=cancel)
        secrets = inherited.secrets_with(call)
        feed = (
            None if call.on_output is None else LiveFeed(call.on_output, secrets, self.max_output)
        )
        captured = CapturedOutput(self.max_output, feed=feed)
        files = (inputs_file, outputs_file)
        return _Running(call, process, started, watched, output, captured, *files, secrets, begun)

    def _finish(self, running: _Running) -> DriverResult:
        """The result of a started call whose driver has exited (not yet reaped); its group
        is killed, its files are removed."""
        call = running.call
        try:
            ended = self._watchdog.release(running.process, running.watched)
            self._reaper.forget(running.pid)
            ending = _ending_of(ended, call)
            running.read_output()  # what the driver printed last: a pipe holds 64 KiB at most
            if running.captured.feed is not None:
                running.captured.feed.close()
            output = running.captured.text(running.secrets)
            outputs, error = None, ending.error
            if call.action == "apply" and ending.exit_code == 0 and error is None:
                outputs, error = _read_outputs(running.outputs_file)
        finally:
            running.close_output()
            _remove_files(running.inputs_file, running.outputs_file)
        return DriverResult(
            exit_code=ending.exit_code,
            output=output,
            outputs=outputs,
            duration=time.monotonic() - running.begun,
            timed_out=ending.timed_out,
            cancelled=ending.cancelled,
            error=error,
        )

    def _abandon(self, running: _Running) -> None:
        """An exception left a started call behind: kill its driver, reap it, remove its
        files. Safe after a `_finish` that failed half-way."""
        signal_group(running.process.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reaped already
            wait_for_exit(running.process.pid)
        self._watchdog.release(running.process, running.watched)
        self._reaper.forget(running.pid)
        running.close_output()
        _remove_files(running.inputs_file, running.outputs_file)


@dataclass
class _Running:
    """A call whose driver has started: what finishing it needs."""

    call: DriverCall
    process: subprocess.Popen[bytes]
    started: int | None  # the leader's start time (`process_groups.start_time`)
    watched: Watched
    output: int  # the read end of the driver's stdout and stderr, non-blocking
    captured: CapturedOutput
    inputs_file: str
    outputs_file: str
    secrets: Sequence[bytes]
    begun: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_output(self) -> bool:
        """Keep what the pipe holds now; whether it reached end of file."""
        return self.output < 0 or self.captured.read_from(self.output)

    def close_output(self) -> None:
        """Close the pipe once, however often asked (a descriptor closed twice may be
        another thread's by then)."""
        if self.output >= 0:
            output, self.output = self.output, -1
            os.close(output)


@functools.cache
def _dev_null() -> int:
    """One read-only /dev/null for every driver's stdin, opened once (not twice per call)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _output_pipe() -> tuple[int, int]:
    """A pipe for a driver's stdout and stderr: (read end, non-blocking; write end). Both
    close on exec; `Popen` gives the driver its own copy of the write end."""
    output, printed_to = os.pipe()
    os.set_blocking(output, False)  # the write end stays blocking: drivers wait when it is full
    return output, printed_to


def _read_outputs(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """`apply`'s outputs: ({}, None) when no file; (None, "outputs file: ...") when unusable.

    Only a regular file is read, and not through a link: a driver that left a FIFO there
    had gitopsd wait for ever for a writer (deaf to cancel and SIGTERM), and a link would
    have it read a file outside the call's (`/etc/passwd`, `/dev/zero`)."""
    name = os.path.basename(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, f"outputs file: {name} is a symbolic link, not a file"
        return None, f"outputs file: cannot read {name}: {error.strerror or error}"
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None, f"outputs file: {name} is not a regular file"
        with open(descriptor, "rb", closefd=False) as file:
            raw = file.read(MAX_OUTPUTS_FILE + 1)
    finally:
        os.close(descriptor)
    if len(raw) > MAX_OUTPUTS_FILE:
        return None, f"outputs file: larger than {MAX_OUTPUTS_FILE} bytes (1 MiB)"
    return _parse_outputs(raw)


def describe_duration(seconds: float) -> str:
    """A duration as Go spells it: `15m0s`, `1h0m0s`, `30s`, `0.3s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    text = f"{round(rest, 3):g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


def _parse_outputs(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Read as the API reads a body (`json_limits`): no NaN or out-of-range number, no key
    given twice, at most 64 levels deep (a deeper file made a RecursionError)."""
    try:
        value = json_limits.parse(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return None, f"outputs file: not UTF-8 (byte 0x{raw[error.start]:02x} at {error.start})"
    except JsonLimitError as error:
        return None, f"outputs file: {error}"
    if not isinstance(value, dict):
        return None, f"outputs file: expected a JSON object, got {_describe_json(value)}"
    return value, None


def _describe_json(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "null"


def _ending_of(ended: Exit, call: DriverCall) -> _Ending:
    if ended.stopped == CANCELLED:
        return _Ending(cancelled=True, error="cancelled")
    if ended.stopped == TIMED_OUT:
        return _Ending(timed_out=True, error=f"timed out after {describe_duration(call.timeout)}")
    if ended.returncode >= 0:
        code = ended.returncode
        return _EXITED[code] if code < len(_EXITED) else _Ending(exit_code=code)
    return _Ending(error=f"killed by {_signal_name(-ended.returncode)}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _with_command(call: DriverCall) -> DriverCall:
    """`call` with the argv and env its command driver settings give its action (a gate's
    call has them already). A call of an action the settings have no command for gets an
    empty argv, which is refused before anything starts."""
    if not isinstance(call.driver, CommandDriver):
        return call
    command = call.driver.command(call.action)
    return replace(call, argv=command or (), env=call.driver.env)


def _write_inputs(handle: int, inputs: Mapping[str, Any]) -> None:
    """Write the inputs file and close it.

    ASCII-escaped JSON, so any string (lone surrogates included) round-trips through a JSON
    parser; `default=str` turns YAML dates and other stragglers into their text."""
    try:
        text = json.dumps(dict(inputs), indent=2, default=str)
        data = (text + "\n").encode("ascii")
        while data:  # one write but for a short one (a full disk raises)
            data = data[os.write(handle, data) :]
    finally:
        os.close(handle)


def _remove_files(inputs_file: str, outputs_file: str) -> None:
    # the outputs file first: a crash between the two leaves the inputs file, which keeps its
    # number (and so the outputs file's name) from being used again
    _remove(outputs_file)
    _remove(inputs_file)


def _remove(path: str) -> None:
    """Remove a call's file, or whatever a driver left at that path (even a folder)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _prepare_state_dir(state_dir: Path) -> str | None:
    if state_dir.is_dir():
        return None  # every run but a component's first: skip the mkdir syscalls
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create state folder {state_dir}: {error.strerror or error}"
    return None


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _scratch_prefix(work_dir: str, environment: str, component: str, action: str) -> str:
    """`<work_dir>/<environment>.<component>.<action>.`, made safe as a file name, `work_dir`
    normalised as mkstemp did. Not cached: a few microseconds beside a process start, where a
    cache held one more string for every component a daemon's commits had changed."""
    name = _NOT_FILE_NAME.sub("_", f"{environment}.{component}.{action}.")
    return os.path.join(os.path.abspath(work_dir), name)
