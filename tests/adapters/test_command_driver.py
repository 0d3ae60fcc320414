"""The command driver protocol, run on real processes: variables, files, exit codes, timeouts,
cancellation, process-group cleanup, output capping and secret redaction."""

from __future__ import annotations

import datetime
import enum
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters import child_processes, command_driver, driver_environment
from gitopsd.adapters.command_driver import CommandDriverRunner, describe_duration
from gitopsd.engine.ports import DriverCall, DriverResult

SHA = "0123456789abcdef0123456789abcdef01234567"
INHERITED = {"GITOPSD_DATA_DIR": "/leak", "GITOPSD_API_TOKEN": "daemon-token-1"}

DUMP_DRIVER = """
import json, os, sys
inputs = json.load(open(os.environ["GITOPSD_INPUTS"], encoding="utf-8"))
dump = {"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "inputs": inputs,
        "inputs_mode": os.stat(os.environ["GITOPSD_INPUTS"]).st_mode & 0o777}
with open(os.environ["DUMP_TO"], "w", encoding="utf-8") as file:
    json.dump(dump, file)
"""


@pytest.fixture(autouse=True)
def component(tmp_path: Path) -> Path:
    folder = tmp_path / "checkout" / "components" / "network"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def runner(tmp_path: Path) -> CommandDriverRunner:
    return make_runner(tmp_path)


def make_runner(tmp_path: Path, **options: Any) -> CommandDriverRunner:
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUTF8": "1", **INHERITED}
    options.setdefault("base_env", base_env)
    return CommandDriverRunner(tmp_path / "work", **options)


def make_call(tmp_path: Path, argv: Sequence[str], **changes: Any) -> DriverCall:
    fields: dict[str, Any] = {
        "argv": tuple(argv),
        "cwd": tmp_path / "checkout" / "components" / "network",
        "environment": "dev",
        "component": "network",
        "revision": SHA,
        "action": "plan",
        "inputs": {},
        "state_dir": tmp_path / "state" / "dev" / "network",
        "timeout": 10.0,
    }
    return DriverCall(**(fields | changes))


def script(tmp_path: Path, name: str, text: str) -> Path:
    """An executable driver script; `#!/bin/sh` unless it starts with its own `#!`."""
    path = tmp_path / name
    path.write_text(text if text.startswith("#!") else "#!/bin/sh\n" + text)
    path.chmod(0o755)
    return path


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run_dump(
    runner: CommandDriverRunner, tmp_path: Path, **changes: Any
) -> tuple[DriverResult, dict[str, Any]]:
    dump = tmp_path / "dump.json"
    env = {"DUMP_TO": str(dump), **changes.pop("env", {})}
    result = runner.run(make_call(tmp_path, python(DUMP_DRIVER), env=env, **changes))
    assert result.exit_code == 0, result
    return result, json.loads(dump.read_text(encoding="utf-8"))


def is_gone(pid: int) -> bool:
    """Dead, or a zombie waiting for an init that may never reap it."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pids: Sequence[int], within: float = 1.0) -> bool:
    deadline = time.monotonic() + within
    while not all(is_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pids(folder: Path, *names: str) -> list[int]:
    return [int((folder / name).read_text()) for name in names]


# --- the environment and files a driver sees -------------------------------------------------


def test_protocol_variables_have_the_calls_values(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    call_env = {"TF_IN_AUTOMATION": "1"}
    _, dump = run_dump(runner, tmp_path, action="apply", inputs={"region": "west"}, env=call_env)
    env = dump["env"]
    assert env["GITOPSD_ENVIRONMENT"] == "dev"
    assert env["GITOPSD_COMPONENT"] == "network"
    assert env["GITOPSD_REVISION"] == SHA
    assert env["GITOPSD_ACTION"] == "apply"
    assert env["GITOPSD_STATE_DIR"] == str(tmp_path / "state" / "dev" / "network")
    inputs_file, outputs_file = Path(env["GITOPSD_INPUTS"]), Path(env["GITOPSD_OUTPUTS"])
    assert inputs_file.name.startswith("dev.network.apply.")
    assert inputs_file.name.endswith(".inputs.json")
    assert outputs_file.name == inputs_file.name.replace(".inputs.json", ".outputs.json")
    assert inputs_file.parent == outputs_file.parent == tmp_path / "work"
    assert dump["inputs_mode"] == 0o600
    assert dump["inputs"] == {"region": "west"}
    assert env["TF_IN_AUTOMATION"] == "1"
    assert {name for name in env if name.startswith("GITOPSD_")} == {
        "GITOPSD_ENVIRONMENT",
        "GITOPSD_COMPONENT",
        "GITOPSD_REVISION",
        "GITOPSD_ACTION",
        "GITOPSD_INPUTS",
        "GITOPSD_OUTPUTS",
        "GITOPSD_STATE_DIR",
        "GITOPSD_INPUT_REGION",
    }


def test_inherited_gitopsd_variables_are_not_passed(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    _, dump = run_dump(runner, tmp_path)
    assert not set(INHERITED) & set(dump["env"])
    assert dump["env"]["PYTHONUTF8"] == "1"  # the rest of the base environment is


def test_call_env_cannot_override_protocol_variables(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    _, dump = run_dump(runner, tmp_path, env={"GITOPSD_ACTION": "destroy"})
    assert dump["env"]["GITOPSD_ACTION"] == "plan"


def test_base_env_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SET_AFTER_CONSTRUCTION", "yes")
    monkeypatch.setenv("GITOPSD_CONFIG", "/etc/gitopsd.yaml")
    runner = CommandDriverRunner(tmp_path / "work")
    monkeypatch.setenv("SET_LATER_STILL", "also")
    _, dump = run_dump(runner, tmp_path)
    assert dump["env"]["SET_AFTER_CONSTRUCTION"] == "yes"
    assert dump["env"]["SET_LATER_STILL"] == "also"
    assert "GITOPSD_CONFIG" not in dump["env"]


def test_input_variables_are_mangled_names_and_compact_json(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    inputs = {
        "vnet-id": "vnet-1",
        "node.count": 3,
        "enabled": True,
        "tags": {"a": 1},
        "nothing": None,
        "ratio": 0.5,
        "Mixed_Case9": "m",
        "zones": [1, "b"],
        "number_text": "3",
    }
    _, dump = run_dump(runner, tmp_path, inputs=inputs)
    env = dump["env"]
    assert env["GITOPSD_INPUT_VNET_ID"] == "vnet-1"
    assert env["GITOPSD_INPUT_NODE_COUNT"] == "3"
    assert env["GITOPSD_INPUT_ENABLED"] == "true"
    assert env["GITOPSD_INPUT_TAGS"] == '{"a":1}'
    assert env["GITOPSD_INPUT_NOTHING"] == "null"
    assert env["GITOPSD_INPUT_RATIO"] == "0.5"
    assert env["GITOPSD_INPUT_MIXED_CASE9"] == "m"
    assert env["GITOPSD_INPUT_ZONES"] == '[1,"b"]'
    assert env["GITOPSD_INPUT_NUMBER_TEXT"] == "3"
    assert dump["inputs"] == inputs  # the file keeps names and types as they are


def test_the_working_directory_is_the_calls_cwd(
    runner: CommandDriverRunner, tmp_path: Path, component: Path
) -> None:
    _, dump = run_dump(runner, tmp_path)
    assert Path(dump["cwd"]).resolve() == component.resolve()


def test_a_relative_command_runs_from_the_component_folder(
    runner: CommandDriverRunner, tmp_path: Path, component: Path
) -> None:
    script(component, "plan.sh", "echo planned in $(pwd)\n")
    result = runner.run(make_call(tmp_path, ["./plan.sh"]))
    assert result.exit_code == 0
    assert result.output == f"planned in {component}\n"


def test_state_dir_is_created_and_kept_across_calls(
    runner: CommandDriverRunner, tmp_path: Path, component: Path
) -> None:
    counter = script(
        tmp_path,
        "count.sh",
        'n=$(cat "$GITOPSD_STATE_DIR/n" 2>/dev/null || echo 0)\n'
        'echo $((n + 1)) > "$GITOPSD_STATE_DIR/n"\n'
        "echo run $((n + 1))\n",
    )
    state_dir = tmp_path / "state" / "dev" / "network"
    assert not state_dir.exists()
    first = runner.run(make_call(tmp_path, [str(counter)]))
    second = runner.run(make_call(tmp_path, [str(counter)]))
    assert (first.output, second.output) == ("run 1\n", "run 2\n")
    assert (state_dir / "n").read_text() == "2\n"


# --- hostile inputs --------------------------------------------------------------------------


def test_hostile_inputs_arrive_verbatim_and_never_in_argv(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    inputs = {
        "subst": f"$(touch {marker})",
        "backticks": f"`touch {marker}`",
        "chain": f"; rm -rf x; touch {marker}",
        "quotes": "'\"\\",
        "lines": "one\ntwo\r\nthree\n",
        "big": "x" * 100_000,
        "unicode": "héllo ✓ 日本 🚀",
        "spaces": "  leading and trailing  ",
        "empty": "",
    }
    _, dump = run_dump(runner, tmp_path, inputs=inputs)
    assert dump["inputs"] == inputs
    for name, value in inputs.items():
        assert dump["env"][f"GITOPSD_INPUT_{name.upper()}"] == value
    assert dump["argv"] == ["-c"]  # python -c: nothing but the program itself
    assert not marker.exists()


def test_a_shell_driver_using_hostile_inputs_runs_nothing(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    echo = script(tmp_path, "echo.sh", 'printf "%s|" "$GITOPSD_INPUT_A" $GITOPSD_INPUT_B "$@"\n')
    inputs = {"a": f"$(touch {marker})", "b": f"`touch {marker}`"}
    result = runner.run(make_call(tmp_path, [str(echo)], inputs=inputs))
    assert result.output == f"$(touch {marker})|`touch|{marker}`|"
    assert not marker.exists()


def test_an_input_that_no_environment_can_carry_is_an_error(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = runner.run(make_call(tmp_path, python("pass"), inputs={"nul": "a\0b"}))
    assert result.exit_code is None
    assert result.error is not None and "'GITOPSD_INPUT_NUL'" in result.error
    assert list((tmp_path / "work").iterdir()) == []


# --- exit codes and outputs ------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_exit_codes_pass_through(runner: CommandDriverRunner, tmp_path: Path, code: int) -> None:
    result = runner.run(make_call(tmp_path, python(f"import sys; sys.exit({code})")))
    assert result.exit_code == code
    assert result.error is None
    assert result.succeeded is (code == 0)
    assert not result.timed_out and not result.cancelled


def apply_writing(runner: CommandDriverRunner, tmp_path: Path, content: str) -> DriverResult:
    """Run an apply that writes `content`, a Python expression, as its outputs file."""
    code = f"import os; open(os.environ['GITOPSD_OUTPUTS'], 'w').write({content})"
    return runner.run(make_call(tmp_path, python(code), action="apply"))


def test_apply_returns_the_outputs_object(runner: CommandDriverRunner, tmp_path: Path) -> None:
    result = apply_writing(runner, tmp_path, repr('{"vnet_id": "v", "subnets": ["a", "b"]}'))
    assert result.succeeded
    assert result.outputs == {"vnet_id": "v", "subnets": ["a", "b"]}


def test_apply_without_an_outputs_file_has_no_outputs(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = runner.run(make_call(tmp_path, python("pass"), action="apply"))
    assert result.succeeded
    assert result.outputs == {}


def test_invalid_outputs_json_names_line_and_column(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = apply_writing(runner, tmp_path, repr('{\n  "a": 1,\n  oops\n}'))
    assert result.exit_code == 0 and not result.succeeded
    assert result.outputs is None
    assert result.error is not None
    assert result.error.startswith("outputs file: invalid JSON at line 3, column 3")


@pytest.mark.parametrize(
    ("content", "described"),
    [("[1, 2]", "a list"), ('"text"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_outputs_that_are_not_an_object_are_an_error(
    runner: CommandDriverRunner, tmp_path: Path, content: str, described: str
) -> None:
    result = apply_writing(runner, tmp_path, repr(content))
    assert result.outputs is None
    assert result.error == f"outputs file: expected a JSON object, got {described}"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("'[' * 100000", "outputs file: nested deeper than 64 levels"),
        ("'{\"a\": ' + '[' * 70 + ']' * 70 + '}'", "outputs file: nested deeper than 64 levels"),
        ("'{\"id\": 1e999}'", "outputs file: the number 1e999 is out of range"),
        ("'{\"id\": -Infinity}'", "outputs file: -Infinity is not a JSON number"),
        ('\'{"id": 1, "id": 2}\'', "outputs file: duplicate key 'id'"),
    ],
)
def test_outputs_json_is_read_within_the_apis_limits(
    runner: CommandDriverRunner, tmp_path: Path, content: str, error: str
) -> None:
    """A 100,000-level file made a RecursionError (a traceback, `internal error`), and
    `1e999` became infinity, handed to dependents as `Infinity`, which is not JSON."""
    result = apply_writing(runner, tmp_path, content)
    assert result.exit_code == 0 and result.outputs is None
    assert result.error is not None and result.error.startswith(error)


@pytest.mark.parametrize(
    ("making", "error"),
    [
        ("os.mkfifo(os.environ['GITOPSD_OUTPUTS'])", "is not a regular file"),
        ("os.symlink('/etc/passwd', os.environ['GITOPSD_OUTPUTS'])", "is a symbolic link"),
        ("os.mkdir(os.environ['GITOPSD_OUTPUTS'])", "is not a regular file"),
    ],
)
def test_only_a_regular_outputs_file_is_read(
    runner: CommandDriverRunner, tmp_path: Path, making: str, error: str
) -> None:
    """A FIFO left there had gitopsd wait for ever for a writer, deaf to cancel and SIGTERM;
    a link had it read a file outside the call's."""
    done: list[DriverResult] = []
    call = make_call(tmp_path, python(f"import os; {making}"), action="apply")
    reading = threading.Thread(target=lambda: done.append(runner.run(call)), daemon=True)
    reading.start()
    reading.join(timeout=20)
    assert done, "gitopsd still waits on the outputs file"
    result = done[0]
    assert result.exit_code == 0 and result.outputs is None
    assert result.error is not None and result.error.startswith("outputs file: ")
    assert error in result.error


def test_outputs_over_one_mebibyte_are_an_error(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = apply_writing(runner, tmp_path, """'{"a": "' + 'x' * 2**20 + '"}'""")
    assert result.exit_code == 0
    assert result.outputs is None
    assert result.error is not None
    assert result.error.startswith("outputs file: larger than")


def test_outputs_are_read_only_after_a_successful_apply(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    writes = "import os; open(os.environ['GITOPSD_OUTPUTS'], 'w').write('{\"a\": 1}')"
    failed = runner.run(make_call(tmp_path, python(writes + "; exit(1)"), action="apply"))
    planned = runner.run(make_call(tmp_path, python(writes), action="plan"))
    assert (failed.exit_code, failed.outputs, failed.error) == (1, None, None)
    assert (planned.exit_code, planned.outputs) == (0, None)


# --- timeouts, cancellation and process groups -----------------------------------------------

SPAWNS_AND_SLEEPS = """
sleep 60 &
echo $! > "$PIDS/grandchild"
echo $$ > "$PIDS/driver"
sleep 60
"""


def test_a_timeout_kills_the_whole_process_group(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    driver = script(tmp_path, "spawn.sh", SPAWNS_AND_SLEEPS)
    call = make_call(tmp_path, [str(driver)], timeout=0.4, env={"PIDS": str(tmp_path)})
    result = runner.run(call)
    assert result.timed_out and not result.cancelled
    assert result.exit_code is None
    assert result.error == "timed out after 0.4s"
    assert result.duration < 1.5
    assert wait_gone(read_pids(tmp_path, "driver", "grandchild"))


def test_a_driver_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, kill_grace=0.3)
    stubborn = "trap '' TERM\n" + SPAWNS_AND_SLEEPS  # the ignored TERM is inherited by both
    driver = script(tmp_path, "stubborn.sh", stubborn)
    call = make_call(tmp_path, [str(driver)], timeout=0.3, env={"PIDS": str(tmp_path)})
    result = runner.run(call)
    assert result.timed_out
    assert 0.6 <= result.duration < 1.6
    assert wait_gone(read_pids(tmp_path, "driver", "grandchild"))


def test_a_driver_handling_sigterm_exits_before_the_grace(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, kill_grace=5.0)
    graceful = script(tmp_path, "graceful.sh", "trap 'echo cleaned up; exit 0' TERM\nsleep 60\n")
    result = runner.run(make_call(tmp_path, [str(graceful)], timeout=0.3))
    assert result.timed_out and result.exit_code is None
    assert result.duration < 1.5
    assert "cleaned up" in result.output


def test_cancel_stops_the_driver(runner: CommandDriverRunner, tmp_path: Path) -> None:
    driver = script(tmp_path, "spawn.sh", SPAWNS_AND_SLEEPS)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        call = make_call(tmp_path, [str(driver)], env={"PIDS": str(tmp_path)})
        result = runner.run(call, cancel=cancel)
    finally:
        timer.cancel()
    assert result.cancelled and not result.timed_out
    assert (result.exit_code, result.error) == (None, "cancelled")
    assert result.duration < 1.5
    assert wait_gone(read_pids(tmp_path, "driver", "grandchild"))


def test_a_background_child_does_not_outlive_a_normal_exit(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    driver = script(tmp_path, "leak.sh", 'sleep 60 &\necho $! > "$PIDS/grandchild"\nexit 0\n')
    result = runner.run(make_call(tmp_path, [str(driver)], env={"PIDS": str(tmp_path)}))
    assert result.exit_code == 0
    assert result.duration < 1.0
    assert wait_gone(read_pids(tmp_path, "grandchild"))


def test_an_interrupted_wait_kills_the_driver_and_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = script(tmp_path, "stays.sh", 'echo $$ > "$PIDS/driver"\nexec sleep 30\n')
    started = tmp_path / "driver"

    def interrupted(pid: int, output: int, read: object) -> None:  # Ctrl-C while waiting
        deadline = time.monotonic() + 5
        while not (started.exists() and started.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt

    monkeypatch.setattr(command_driver, "wait_reading", interrupted)
    runner = make_runner(tmp_path, kill_grace=1.0)
    begun = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.run(make_call(tmp_path, [str(driver)], env={"PIDS": str(tmp_path)}))
    assert time.monotonic() - begun < 5.0  # killed, not waited for
    assert wait_gone(read_pids(tmp_path, "driver"))
    assert list((tmp_path / "work").iterdir()) == []


def test_a_driver_killed_by_a_signal_has_no_exit_code(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = runner.run(make_call(tmp_path, python("import os; os.kill(os.getpid(), 9)")))
    assert result.exit_code is None
    assert result.error == "killed by SIGKILL"
    assert not result.timed_out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15m0s"), (30, "30s"), (0.3, "0.3s"), (3600, "1h0m0s"), (5430.5, "1h30m30.5s")],
)
def test_durations_are_described_as_go_does(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


# --- captured output -------------------------------------------------------------------------


def test_stdout_and_stderr_are_captured_together(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    driver = script(tmp_path, "both.sh", "echo out\necho err >&2\necho out again\n")
    result = runner.run(make_call(tmp_path, [str(driver)]))
    assert result.output == "out\nerr\nout again\n"


def test_output_is_capped_keeping_head_and_tail(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, max_output=1000)
    code = "print('BEGIN' + 'x' * 5000 + 'END')"  # 5009 bytes with the newline
    result = runner.run(make_call(tmp_path, python(code)))
    head, marker, tail = result.output.split("\n")[:3]
    assert head == "BEGIN" + "x" * 495
    assert marker == "[... 4009 bytes omitted ...]"
    assert tail == "x" * 496 + "END"


def test_invalid_utf8_output_is_replaced_not_fatal(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe done')"
    assert runner.run(make_call(tmp_path, python(code))).output == "ok \ufffd\ufffd done"


# what a chatty driver prints: far more than a pipe holds (64 KiB), in one go
CHATTY = "import sys; sys.stdout.write('BEGIN' + 'x' * 3_000_000 + 'END'); sys.stdout.flush()"


def chatty_output_is_capped(result: DriverResult) -> None:
    assert (result.exit_code, result.error) == (0, None)
    head, marker, tail = result.output.split("\n")
    assert head == "BEGIN" + "x" * 495
    assert marker == "[... 2999008 bytes omitted ...]"
    assert tail == "x" * 497 + "END"


def test_output_far_beyond_a_pipe_is_read_as_it_comes(tmp_path: Path) -> None:
    result = make_runner(tmp_path, max_output=1000).run(make_call(tmp_path, python(CHATTY)))
    chatty_output_is_capped(result)


def escaping_call(tmp_path: Path, **changes: Any) -> DriverCall:
    """A driver whose child leaves its process group (setsid), so it is not killed with it,
    keeps its stdout open for a minute and writes its pid to `escaped`; the driver prints
    `done` and exits 0."""
    driver = script(
        tmp_path,
        "escape.sh",
        "setsid sh -c 'echo $$ > \"$PIDS/escaped\"; exec sleep 60' &\n"
        'while [ ! -s "$PIDS/escaped" ]; do sleep 0.01; done\necho done\n',
    )
    return make_call(tmp_path, [str(driver)], env={"PIDS": str(tmp_path)}, **changes)


def kill_escaped(tmp_path: Path) -> None:
    escaped = read_pids(tmp_path, "escaped")
    for pid in escaped:
        os.kill(pid, 9)
    assert wait_gone(escaped)


def test_a_child_left_holding_the_output_does_not_hold_up_the_result(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    try:
        result = runner.run(escaping_call(tmp_path))
        assert (result.exit_code, result.output) == (0, "done\n")
        assert result.duration < 5.0
    finally:
        kill_escaped(tmp_path)


def test_without_pidfds_output_is_read_and_the_exit_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before Linux 5.3: the wait looks for the exit every tick instead
    monkeypatch.setattr(child_processes, "pidfds_work", lambda: False)
    runner = make_runner(tmp_path, max_output=1000)
    chatty_output_is_capped(runner.run(make_call(tmp_path, python(CHATTY))))
    quiet = runner.run(make_call(tmp_path, ["/bin/sh", "-c", "exec >&-; sleep 0.2; exit 3"]))
    assert (quiet.exit_code, quiet.output) == (3, "")


SECRET_ENV = {"DEPLOY_TOKEN": "token-from-daemon", "REGION_NAME": "north-pole"}


def test_secrets_from_env_and_inputs_are_redacted(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, base_env={**SECRET_ENV, "PATH": os.environ["PATH"]})
    inputs = {
        "api-key": "input-secret",
        "db_password": "hunter22",
        "client_secret": "abc",  # shorter than 4: too common to hide
        "region": "westeurope",
        "node_count": 12345,
    }
    call_env = {"GITHUB_AUTH": "driver-env-secret", "MODE": "fast"}
    values = [*SECRET_ENV.values(), *call_env.values(), *map(str, inputs.values())]
    code = f"print({values!r})"
    result = runner.run(make_call(tmp_path, python(code), inputs=inputs, env=call_env))
    for hidden in ("token-from-daemon", "driver-env-secret", "input-secret", "hunter22"):
        assert hidden not in result.output
    assert result.output.count("***") == 4
    for shown in ("north-pole", "fast", "'abc'", "westeurope", "12345"):
        assert shown in result.output


def test_longer_secrets_are_redacted_first(tmp_path: Path) -> None:
    base_env = {"PATH": os.environ["PATH"], "SHORT_TOKEN": "abcd", "LONG_TOKEN": "abcdefgh"}
    runner = make_runner(tmp_path, base_env=base_env)
    result = runner.run(make_call(tmp_path, python("print('abcdefgh abcd')")))
    assert result.output == "*** ***\n"


def test_a_secret_cut_by_the_output_cap_leaves_no_fragment(tmp_path: Path) -> None:
    secret = "s3cr3t-value-0123456789"
    base_env = {"PATH": os.environ["PATH"], "VAULT_TOKEN": secret}
    runner = make_runner(tmp_path, max_output=100, base_env=base_env)
    # the head keeps 50 bytes, ending in the middle of the first secret; the tail (50 bytes)
    # starts in the middle of the second
    code = f"print('h' * 40 + {secret!r} + 'm' * 200 + {secret!r} + 't' * 35, end='')"
    output = runner.run(make_call(tmp_path, python(code))).output
    assert output.startswith("h" * 40 + "\n[... ")
    assert output.endswith(" bytes omitted ...]\n" + "t" * 35)
    assert "s3" not in output and "89" not in output


# --- commands that cannot run, and cleaning up -----------------------------------------------


def test_a_missing_executable_is_an_error_not_an_exception(
    runner: CommandDriverRunner, tmp_path: Path, component: Path
) -> None:
    result = runner.run(make_call(tmp_path, ["./no-such-driver.sh", "plan"]))
    assert result.exit_code is None
    assert result.error == (
        f"cannot start './no-such-driver.sh' in {component}: No such file or directory"
    )


def test_a_file_that_is_not_executable_is_an_error(
    runner: CommandDriverRunner, tmp_path: Path, component: Path
) -> None:
    (component / "plan.sh").write_text("#!/bin/sh\necho hi\n")
    result = runner.run(make_call(tmp_path, ["./plan.sh"]))
    assert result.exit_code is None
    assert result.error == f"cannot start './plan.sh' in {component}: Permission denied"


def test_a_missing_working_directory_is_an_error(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    result = runner.run(make_call(tmp_path, python("pass"), cwd=gone))
    assert result.exit_code is None
    assert result.error is not None
    assert result.error.startswith(f"cannot start {sys.executable!r} in {gone}: ")


def test_the_call_files_are_removed_after_every_kind_of_call(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    _, dump = run_dump(runner, tmp_path, action="apply", inputs={"a": "b"})
    assert not Path(dump["env"]["GITOPSD_INPUTS"]).exists()
    runner.run(make_call(tmp_path, ["./missing"]))
    runner.run(make_call(tmp_path, python("import time; time.sleep(5)"), timeout=0.1))
    runner.run(
        make_call(tmp_path, python("open(__import__('os').environ['GITOPSD_OUTPUTS'], 'w')"))
    )
    assert list((tmp_path / "work").iterdir()) == []


def test_calls_run_in_parallel_without_sharing_files(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    code = (
        "import json, os, time; time.sleep(0.2)\n"
        "value = json.load(open(os.environ['GITOPSD_INPUTS']))['n']\n"
        "open(os.environ['GITOPSD_OUTPUTS'], 'w').write(json.dumps({'n': value}))"
    )
    results: dict[int, DriverResult] = {}

    def call(n: int) -> None:
        results[n] = runner.run(make_call(tmp_path, python(code), action="apply", inputs={"n": n}))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 1.5
    assert {n: result.outputs for n, result in results.items()} == {n: {"n": n} for n in range(4)}


def test_calls_from_many_threads_never_share_an_inputs_file(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    driver = script(tmp_path, "name.sh", 'printf "%s %s" "$GITOPSD_INPUTS" "$GITOPSD_INPUT_N"\n')
    seen: list[tuple[str, str]] = []

    def calls(thread: int) -> None:
        for n in range(25):
            number = str(thread * 100 + n)
            result = runner.run(make_call(tmp_path, [str(driver)], inputs={"n": number}))
            name, got = result.output.split(" ")
            seen.append((name, got))
            assert got == number

    run_racing([threading.Thread(target=calls, args=(thread,)) for thread in range(8)])
    assert len(seen) == 200
    assert len({name for name, _ in seen}) == 200
    assert list((tmp_path / "work").iterdir()) == []


def run_racing(threads: list[threading.Thread]) -> None:
    """Start and join `threads`, the interpreter switching between them as often as it can."""
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)


def test_an_inputs_file_name_already_taken_is_skipped_not_overwritten(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    # what a daemon killed in the middle of a call leaves, found by one with the same pid
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    _, first = run_dump(runner, tmp_path, action="apply", inputs={"a": "b"})
    number = int(Path(first["env"]["GITOPSD_INPUTS"]).name.split("-")[-1].split(".")[0])
    taken = f"dev.network.apply.{os.getpid()}-{number + 1}"  # the name the next call would take
    (work / f"{taken}.inputs.json").write_text("left behind")
    (work / f"{taken}.outputs.json").write_text('{"stale": true}')
    result, dump = run_dump(runner, tmp_path, action="apply", inputs={"a": "b"})
    expected = f"dev.network.apply.{os.getpid()}-{number + 2}.inputs.json"
    assert Path(dump["env"]["GITOPSD_INPUTS"]).name == expected
    assert dump["inputs"] == {"a": "b"}
    assert result.outputs == {}  # not the stale outputs file of the name it skipped
    assert (work / f"{taken}.inputs.json").read_text() == "left behind"
    assert (work / f"{taken}.outputs.json").read_text() == '{"stale": true}'


def test_first_calls_from_many_threads_all_make_or_find_the_work_dir(tmp_path: Path) -> None:
    codes: list[int | None] = []

    def first_call(runner: CommandDriverRunner, barrier: threading.Barrier, n: int) -> None:
        barrier.wait()
        call = make_call(tmp_path, ["/bin/sh", "-c", "exit 0"], component=f"c{n}")
        codes.append(runner.run(call).exit_code)

    for attempt in range(10):  # a race: try it a few times, on a new work_dir each time
        runner = make_runner(tmp_path / str(attempt))
        barrier = threading.Barrier(8)
        run_racing(
            [threading.Thread(target=first_call, args=(runner, barrier, n)) for n in range(8)]
        )
    assert codes == [0] * 80


def test_a_relative_work_dir_gives_drivers_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CommandDriverRunner(Path("work"), base_env={"PATH": os.environ["PATH"]})
    _, dump = run_dump(runner, tmp_path, inputs={"a": "b"})  # reads them from its own folder
    assert dump["inputs"] == {"a": "b"}
    assert dump["env"]["GITOPSD_INPUTS"].startswith(f"{tmp_path}/work/")
    assert dump["env"]["GITOPSD_OUTPUTS"].startswith(f"{tmp_path}/work/")
    runner = CommandDriverRunner(tmp_path / "elsewhere" / ".." / "work")
    _, dump = run_dump(runner, tmp_path)
    assert dump["env"]["GITOPSD_INPUTS"].startswith(f"{tmp_path}/work/")  # as mkstemp gave it


def test_the_work_dir_is_created_when_missing(runner: CommandDriverRunner, tmp_path: Path) -> None:
    assert not (tmp_path / "work").exists()
    assert runner.run(make_call(tmp_path, ["/bin/sh", "-c", "exit 0"])).exit_code == 0
    assert (tmp_path / "work").stat().st_mode & 0o777 == 0o700
    (tmp_path / "work").rmdir()  # removed behind the runner's back: made again
    assert runner.run(make_call(tmp_path, ["/bin/sh", "-c", "exit 0"])).exit_code == 0


# --- the inherited environment, read on every call -------------------------------------------

PRINTS_ENV = "import os; print(sorted((k, v) for k, v in os.environ.items() if k.startswith('T_')))"


def test_changes_to_the_process_environment_reach_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_CHANGED", "before")
    monkeypatch.setenv("T_REMOVED", "here")
    runner = CommandDriverRunner(tmp_path / "work")
    first = runner.run(make_call(tmp_path, python(PRINTS_ENV)))
    assert first.output == "[('T_CHANGED', 'before'), ('T_REMOVED', 'here')]\n"
    monkeypatch.setenv("T_ADDED", "new")
    monkeypatch.setenv("T_CHANGED", "after")
    monkeypatch.delenv("T_REMOVED")
    monkeypatch.setenv("T_SECRET_TOKEN", "hush-hush")
    second = runner.run(make_call(tmp_path, python(PRINTS_ENV)))
    assert second.output == (
        "[('T_ADDED', 'new'), ('T_CHANGED', 'after'), ('T_SECRET_TOKEN', '***')]\n"
    )
    monkeypatch.delenv("T_SECRET_TOKEN")
    monkeypatch.setenv("T_ADDED", "hush-hush")  # no longer a secret's value: shown
    third = runner.run(make_call(tmp_path, python(PRINTS_ENV)))
    assert third.output == "[('T_ADDED', 'hush-hush'), ('T_CHANGED', 'after')]\n"


def test_changes_to_an_explicit_base_env_reach_the_next_call(tmp_path: Path) -> None:
    base_env = {"PATH": os.environ["PATH"], "T_KEPT": "1"}
    runner = make_runner(tmp_path, base_env=base_env)
    first = runner.run(make_call(tmp_path, python(PRINTS_ENV)))
    assert first.output == "[('T_KEPT', '1')]\n"
    base_env["T_VAULT_PASSWORD"] = "open-sesame"
    base_env["T_KEPT"] = "2"
    second = runner.run(make_call(tmp_path, python(PRINTS_ENV)))
    assert second.output == "[('T_KEPT', '2'), ('T_VAULT_PASSWORD', '***')]\n"


def test_an_inherited_gitopsd_secret_is_redacted_though_not_passed(
    runner: CommandDriverRunner, tmp_path: Path
) -> None:
    result = runner.run(make_call(tmp_path, python("print('token: daemon-token-1')")))
    assert result.output == "token: ***\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [("T_NUL", "a\0b"), ("T_SURROGATE", "\udc80\ud800"), ("T=EQUALS", "x"), ("", "empty")],
)
def test_a_base_env_variable_no_environment_can_carry_is_an_error_on_every_call(
    tmp_path: Path, name: str, value: str
) -> None:
    runner = make_runner(tmp_path, base_env={"PATH": os.environ["PATH"], name: value})
    for _ in range(2):
        result = runner.run(make_call(tmp_path, python("print('ran')")))
        assert result.exit_code is None and result.output == ""
        assert result.error == (
            f"cannot pass environment variable {name!r}: a NUL character, "
            "a lone surrogate or an '=' in the name"
        )
    assert list((tmp_path / "work").iterdir()) == []


def test_a_bad_base_env_value_the_driver_env_replaces_is_not_an_error(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, base_env={"PATH": os.environ["PATH"], "T_NUL": "a\0b"})
    call = make_call(tmp_path, python(PRINTS_ENV), env={"T_NUL": "fixed"})
    assert runner.run(call).output == "[('T_NUL', 'fixed')]\n"


def test_the_first_variable_that_cannot_be_passed_is_named(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, base_env={"PATH": os.environ["PATH"], "T_A": "a\0"})
    call = make_call(tmp_path, python("pass"), env={"T_B": "b\0"}, inputs={"c": "c\0"})
    assert "'T_A'" in (runner.run(call).error or "")
    runner = make_runner(tmp_path)
    assert "'T_B'" in (runner.run(call).error or "")


# --- the inputs file's text ------------------------------------------------------------------


class Side(enum.IntEnum):
    LEFT = 1


class TextLike(str):
    pass


class Stringly:
    def __str__(self) -> str:
        return "stringly ✓"


INPUTS_FILE_CASES = [
    {},
    {"region": "west"},
    {"a": "b", "n": 3, "f": 0.1, "t": True, "no": None, "big": 2**70, "inf": float("inf")},
    {"odd": '"quotes" \\ \n\t \u2028 日本 🚀', "date": datetime.date(2026, 1, 2)},
    {"thing": Stringly(), "enum": Side.LEFT, "text": TextLike("sub")},
    {"nested": {"a": [1, {"b": []}], "c": {}}, "plain": "x"},
    {"list": [1, "two", None]},
    {"tuple": (1, 2)},
    {"empty_list": [], "empty_object": {}},
]


@pytest.mark.parametrize(
    "value",
    [
        *(None, True, False, 0, -7, 2**70, Side.LEFT),
        *(0.5, -0.0, 1e300, float("nan"), float("-inf")),
        *({"a": [1, None]}, ["x", 2.5], (1,), "text", datetime.date(2026, 1, 2), Stringly()),
    ],
)
def test_input_variables_of_other_values_are_compact_json(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    assert driver_environment.compact_json(value) == expected


@pytest.mark.parametrize("inputs", INPUTS_FILE_CASES)
def test_the_inputs_file_is_json_indented_by_two(
    runner: CommandDriverRunner, tmp_path: Path, inputs: dict[str, Any]
) -> None:
    copy = tmp_path / "copy.json"
    driver = script(tmp_path, "copy.sh", f'cat "$GITOPSD_INPUTS" > {copy}\n')
    assert runner.run(make_call(tmp_path, [str(driver)], inputs=inputs)).exit_code == 0
    assert copy.read_bytes() == (json.dumps(inputs, indent=2, default=str) + "\n").encode()


def test_files_left_by_processes_that_no_longer_run_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen(["/bin/true"])
    ended.wait()
    gone = ended.pid  # reaped: no process has this pid now
    work = tmp_path / "work"
    work.mkdir()
    left = [f"dev.network.apply.{gone}-3.inputs.json", f"dev.network.apply.{gone}-3.outputs.json"]
    kept = [
        f"dev.network.apply.{os.getpid()}-7.inputs.json",  # this process's: it may be running
        f"dev.network.apply.{os.getppid()}-1.inputs.json",
        "notes.txt",
    ]
    for name in left + kept:
        (work / name).write_text("{}")
    assert make_runner(tmp_path).remove_orphaned_files() == 2
    assert sorted(p.name for p in work.iterdir()) == sorted(kept)
    assert make_runner(tmp_path / "nowhere").remove_orphaned_files() == 0
