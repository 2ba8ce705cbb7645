"""bootstrap.sh on every platform it knows, through --dry-run: stub commands on PATH, a faked HOME,
Termux variables and sysfs root; the real script, the real bash. Plus shellcheck and `bash -n`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "bootstrap.sh"
TERMUX_SCRIPTS = [REPO / "termux/boot/start-bxthre3", *sorted((REPO / "termux/shortcuts").iterdir()),
                  REPO / "termux/sv/bxthre3/run"]  # fmt: skip
TOKEN = "bxt1-" + "Q" * 43
TOOLS = ("bash", "sh", "cat", "awk", "cksum", "readlink", "dirname", "sed", "mkdir", "ln", "cmp", "install", "id",
         "env", "grep", "sleep", "printf", "chmod", "rm")  # fmt: skip


class Machine:
    """A pretend device: a HOME, a sysfs root, stub commands, and a venv path that may or may not exist."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.sysfs = root / "sys"
        self.venv = root / "venv"
        self.include = root / "include"
        for d in (self.home, self.bin, self.sysfs, self.include):
            d.mkdir(parents=True, exist_ok=True)
        (self.include / "Python.h").write_text("")
        self.installed_debs: set[str] = set()
        self.stub("cc")
        self.stub("apt-get", 'echo apt-get-ran >> "$STUB_LOG"')
        self.stub("pkg", 'echo pkg-ran >> "$STUB_LOG"')
        self.stub("sudo", 'exec "$@"')
        self.python(venv_ok=True, headers=True)
        tools = root / "tools"  # only what the script needs from the system: no cc, python3, sudo, apt-get
        tools.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            if found:
                (tools / tool).symlink_to(found)
        self.env: dict[str, str] = {
            "PATH": f"{self.bin}:{tools}",
            "HOME": str(self.home),
            "SYSFS_ROOT": str(self.sysfs),
            "BXTHRE3_VENV": str(self.venv),
            "PYTHON": str(self.bin / "python3"),
            "STUB_LOG": str(root / "stub.log"),
        }

    def stub(self, name: str, body: str = "exit 0") -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def python(self, *, venv_ok: bool, headers: bool) -> None:
        include = self.include if headers else self.root / "no-include"
        self.stub(
            "python3",
            f"""case "$*" in
  *"import venv, ensurepip"*) exit {0 if venv_ok else 1} ;;
  *sysconfig*) echo {include} ;;
  *) echo "python3 stub: $*" >&2; exit 3 ;;
esac""",
        )

    def dmi(self, **files: str) -> None:
        d = self.sysfs / "class/dmi/id"
        d.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (d / name).write_text(text + "\n")

    def termux(self) -> Path:
        prefix = self.root / "data/data/com.termux/files/usr"
        (prefix / "bin").mkdir(parents=True, exist_ok=True)
        self.env.update(TERMUX_VERSION="0.118.1", PREFIX=str(prefix))
        self.stub("dpkg", 'grep -qx "$2" "$DEBS" 2>/dev/null')
        self.env["DEBS"] = str(self.root / "debs")
        (self.root / "debs").write_text("\n".join(sorted(self.installed_debs)) + "\n")
        return prefix

    def installed(self) -> None:
        """As after a first real run: the venv, its stamp, and the link on PATH."""
        (self.venv / "bin").mkdir(parents=True, exist_ok=True)
        for name in ("python", "bxthre3"):
            (self.venv / "bin" / name).write_text("#!/bin/sh\n")
            (self.venv / "bin" / name).chmod(0o755)
        pins = (REPO / "pyproject.toml").read_bytes() + (REPO / "constraints.txt").read_bytes()
        stamp = subprocess.run(["cksum"], input=pins, capture_output=True, check=True)
        (self.venv / ".bxthre3-installed").write_bytes(stamp.stdout.rstrip(b"\n") + b" newest=0")
        link_dir = Path(self.env["PREFIX"]) / "bin" if "PREFIX" in self.env else self.home / ".local/bin"
        link_dir.mkdir(parents=True, exist_ok=True)
        (link_dir / "bxthre3").symlink_to(self.venv / "bin" / "bxthre3")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(BOOTSTRAP), *args], capture_output=True, text=True, timeout=60, env={**self.env, **env},
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def actions(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[len("would run: ") :] for line in proc.stdout.splitlines() if line.startswith("would run: ")]


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_newest_mode_upgrades_into_its_own_venv_without_the_pins(machine: Machine) -> None:
    # A copy of the script beside the files it reads: the checkout's own .venv-newest (there after a real
    # `BXTHRE3_NEWEST=1 ./bootstrap.sh test`) would rightly be found up to date and nothing installed.
    checkout = machine.root / "checkout"
    checkout.mkdir()
    for name in ("bootstrap.sh", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, checkout / name)
    proc = subprocess.run(
        ["bash", str(checkout / "bootstrap.sh"), "install", "--dry-run"], capture_output=True, text=True,
        timeout=60, env={**machine.env, "BXTHRE3_NEWEST": "1", "BXTHRE3_VENV": ""}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pip_runs = [a for a in actions(proc) if "-m pip install" in a]
    assert pip_runs and all("--upgrade" in a and "constraints.txt" not in a for a in pip_runs)
    assert all(f"{checkout}/.venv-newest/bin/python" in a for a in pip_runs)


def test_plain_linux_first_run_sets_up_and_starts_all(machine: Machine) -> None:
    proc = machine.run("--dry-run", "--role", "5", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "platform: linux" in proc.stderr
    done = actions(proc)
    assert f"{machine.env['PYTHON']} -m venv {machine.venv}" in done
    assert any("-m pip install" in a and "-e " in a and "[test]" in a for a in done)
    pip_runs = [a for a in done if "-m pip install" in a]
    assert pip_runs and all(f"--constraint {REPO}/constraints.txt" in a for a in pip_runs), "installs the tested pins"
    assert f"ln -sfn {machine.venv}/bin/bxthre3 {machine.home}/.local/bin/bxthre3" in done
    assert done[-1] == f"{machine.venv}/bin/bxthre3 all --ram-per-node 128"
    assert not any("apt-get" in a for a in done), "nothing missing, nothing installed"
    assert not machine.venv.exists() and not (machine.home / ".local").exists(), "--dry-run changed nothing"


def test_missing_compiler_and_headers_come_from_apt_through_sudo(machine: Machine) -> None:
    (machine.bin / "cc").unlink()
    machine.python(venv_ok=False, headers=False)
    machine.stub("id", 'if [ "$1" = "-u" ]; then echo 1000; else /usr/bin/id "$@"; fi')
    proc = machine.run("--dry-run", "--role", "host", "--ram-per-node", "256", "--controller", "10.0.0.5")
    assert proc.returncode == 0, proc.stderr
    done = actions(proc)
    install = [a for a in done if "apt-get install" in a]
    assert install and install[0].startswith("sudo env DEBIAN_FRONTEND=noninteractive apt-get install")
    assert install[0].endswith("python3-venv python3-dev gcc libc6-dev")
    assert done[-1] == f"{machine.venv}/bin/bxthre3 host --ram-limit 256 --controller 10.0.0.5"


TEST_DEBS = ["iproute2", "shellcheck", "g++", "clang-14", "lld-14", "libclang-rt-14-dev-wasm32", "clang-19", "lld-19",
             "libclang-rt-19-dev-wasm32", "wasi-libc", "libc++-14-dev-wasm32", "libc++abi-14-dev-wasm32", "rustc",
             "libstd-rust-dev-wasm32", "chromium"]  # fmt: skip
"""What `./bootstrap.sh test` installs for the suite (the conformance suite's toolchains among them)."""


def debian_with(machine: Machine, debs: set[str], *, uid: int = 0) -> None:
    """dpkg-query answers for `debs` as installed; `id -u` says `uid`."""
    (machine.root / "debs").write_text("\n".join(sorted(debs)) + "\n")
    machine.env["DEBS"] = str(machine.root / "debs")
    machine.stub("dpkg-query", 'for a; do p="$a"; done; grep -qx "$p" "$DEBS" && printf "install ok installed"')
    machine.stub("id", f'if [ "$1" = "-u" ]; then echo {uid}; else /usr/bin/id "$@"; fi')


def test_test_command_installs_the_missing_toolchains_with_one_apt_update(machine: Machine) -> None:
    (machine.bin / "cc").unlink()  # the base install needs apt too: still one `apt-get update`
    debian_with(machine, {"iproute2", "clang-14", "wasi-libc"})
    proc = machine.run("test", "--dry-run", "-x", "tests/conformance", CI="true")
    assert proc.returncode == 0, proc.stderr
    done = actions(proc)
    assert [a for a in done if "apt-get update" in a] == ["env DEBIAN_FRONTEND=noninteractive apt-get update -qq"]
    installs = [a.split(" --no-install-recommends ")[1].split() for a in done if "apt-get install" in a]
    assert installs == [["gcc", "libc6-dev"], [d for d in TEST_DEBS if d not in {"iproute2", "clang-14", "wasi-libc"}]]
    assert done[-3] == f"{machine.venv}/bin/python -m ruff check bxthre3 tests benchmarks"
    assert done[-2] == f"{machine.venv}/bin/python -m ruff format --check bxthre3 tests benchmarks"
    assert done[-1] == f"env BXTHRE3_REQUIRE_TOOLCHAINS=1 {machine.venv}/bin/python -m pytest -x tests/conformance"


def test_test_command_with_everything_installed_runs_no_apt_and_can_opt_out(machine: Machine) -> None:
    machine.installed()
    debian_with(machine, set(TEST_DEBS))
    proc = machine.run("test", "--dry-run", BXTHRE3_REQUIRE_TOOLCHAINS="0")
    assert proc.returncode == 0, proc.stderr
    done = actions(proc)
    assert not any("apt-get" in a for a in done), done
    assert done[-1] == f"env BXTHRE3_REQUIRE_TOOLCHAINS=0 {machine.venv}/bin/python -m pytest "


@pytest.mark.parametrize(
    ("args", "env", "pytest_args"),
    [
        ((), {}, ""),  # one process by default: no pytest-xdist at all
        ((), {"BXTHRE3_TEST_WORKERS": "1"}, ""),
        ((), {"BXTHRE3_TEST_WORKERS": "6"}, "-n 6"),
        (("-n", "2", "tests/unit"), {}, "-n 2 tests/unit"),  # the caller's own -n wins
        (("--numprocesses=5",), {}, "--numprocesses=5"),
        (("-p", "no:xdist", "-x"), {}, "-p no:xdist -x"),
        (("--pdb", "tests/unit"), {}, "--pdb tests/unit"),  # the debugger needs the one process
    ],
)
def test_test_command_spreads_pytest_over_processes_unless_told_otherwise(
    machine: Machine, args: tuple[str, ...], env: dict[str, str], pytest_args: str
) -> None:
    machine.installed()
    debian_with(machine, set(TEST_DEBS))
    proc = machine.run("test", "--dry-run", *args, BXTHRE3_PYTHONS="", **env)
    assert proc.returncode == 0, proc.stderr
    assert actions(proc)[-1] == f"env BXTHRE3_REQUIRE_TOOLCHAINS=1 {machine.venv}/bin/python -m pytest {pytest_args}"


def test_a_bad_worker_count_is_one_line_before_anything_is_installed(machine: Machine) -> None:
    debian_with(machine, set())
    for bad in ("0", "many", "-2"):
        proc = machine.run("test", "--dry-run", BXTHRE3_TEST_WORKERS=bad)
        assert proc.returncode == 1 and actions(proc) == [], proc.stdout
        assert proc.stderr.strip() == (
            f"bootstrap: error: BXTHRE3_TEST_WORKERS must be a whole number of processes (1 or more), not '{bad}'"
        )


def test_test_command_without_root_or_sudo_says_what_is_missing(machine: Machine) -> None:
    machine.installed()
    debian_with(machine, set(TEST_DEBS) - {"clang-19"}, uid=1000)
    (machine.bin / "sudo").unlink()
    proc = machine.run("test", "--dry-run")
    assert proc.returncode == 0 and not any("apt-get" in a for a in actions(proc)), proc.stderr
    assert "missing test packages (install them as root): clang-19" in proc.stderr
    assert actions(proc)[-1].startswith("env BXTHRE3_REQUIRE_TOOLCHAINS=1 "), "the suite then fails, not skips"


def test_test_command_installs_through_sudo_when_not_root(machine: Machine) -> None:
    machine.installed()
    debian_with(machine, set(TEST_DEBS) - {"rustc", "libstd-rust-dev-wasm32"}, uid=1000)
    done = actions(machine.run("test", "--dry-run"))
    assert [a for a in done if "apt-get" in a] == [
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rustc "
        "libstd-rust-dev-wasm32",
    ]


def test_a_second_run_changes_nothing(machine: Machine) -> None:
    machine.installed()
    proc = machine.run("--dry-run", "--role", "node-manager", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert actions(proc) == [
        f"write {machine.home}/.config/bxthre3/role.env (role node-manager)",
        f"{machine.venv}/bin/bxthre3 node-manager --ram-per-node 128",
    ]


def test_termux_uses_pkg_system_site_packages_and_its_own_libzmq(machine: Machine) -> None:
    machine.installed_debs = {"python", "clang", "cmake", "make", "pkg-config", "python-psutil"}
    prefix = machine.termux()
    proc = machine.run("--dry-run", "--role", "3", "--controller", "192.168.1.10", "--token", TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert "platform: termux" in proc.stderr
    done = actions(proc)
    assert "pkg install -y libzmq termux-api" in done
    assert f"{machine.env['PYTHON']} -m venv --system-site-packages {machine.venv}" in done
    pyzmq = [a for a in done if "--no-binary pyzmq" in a]
    assert pyzmq and pyzmq[0].startswith(f"env ZMQ_PREFIX={prefix} ")
    assert not any("install --upgrade pip" in a or "-U pip" in a for a in done), "never upgrades pip on Termux"
    assert any(a.endswith(f"-e {REPO}") for a in done), "no test extras on a phone"
    assert f"ln -sfn {machine.venv}/bin/bxthre3 {prefix}/bin/bxthre3" in done
    assert f"install -m 0755 {REPO}/termux/boot/start-bxthre3 {machine.home}/.termux/boot/start-bxthre3" in done
    assert any(a.endswith(f"{machine.home}/.shortcuts/bxthre3-stop") for a in done)
    assert done[-1] == f"{machine.venv}/bin/bxthre3 node-manager --ram-per-node 128 --controller 192.168.1.10"
    assert TOKEN not in proc.stdout + proc.stderr, "the token never appears on a command line"


def test_termux_rerun_installs_nothing(machine: Machine) -> None:
    machine.installed_debs = {"python", "clang", "cmake", "make", "pkg-config", "libzmq", "python-psutil",
                              "termux-api"}  # fmt: skip
    machine.termux()
    machine.installed()
    for src, dst in (("boot/start-bxthre3", ".termux/boot/start-bxthre3"),
                     ("shortcuts/bxthre3-start", ".shortcuts/bxthre3-start"),
                     ("shortcuts/bxthre3-stop", ".shortcuts/bxthre3-stop")):  # fmt: skip
        (machine.home / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "termux" / src, machine.home / dst)
    proc = machine.run("--dry-run", "--role", "4", "--yes")
    assert proc.returncode == 0, proc.stderr
    started = [a for a in actions(proc) if not a.startswith("write ")]
    assert started == [f"{machine.venv}/bin/bxthre3 host --ram-limit 128"]


@pytest.mark.parametrize(
    ("files", "provider"),
    [
        ({"sys_vendor": "Amazon EC2"}, "aws"),
        ({"bios_vendor": "Amazon EC2"}, "aws"),
        ({"product_name": "Google Compute Engine"}, "gce"),
        ({"chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77"}, "azure"),
        ({"sys_vendor": "DigitalOcean"}, "digitalocean"),
        ({"sys_vendor": "Hetzner"}, "hetzner"),
        ({"chassis_asset_tag": "OracleCloud.com"}, "oracle"),
        ({"sys_vendor": "Linode"}, "linode"),
        ({"sys_vendor": "Akamai"}, "linode"),
    ],
)
def test_cloud_instances_need_the_controller_address(machine: Machine, files: dict[str, str], provider: str) -> None:
    machine.dmi(**files)
    proc = machine.run("--dry-run", "--role", "4", "--yes")
    assert proc.returncode == 1 and f"platform: cloud ({provider})" in proc.stderr
    assert f"on a cloud instance ({provider}) pass --controller" in proc.stderr
    ok = machine.run("--dry-run", "--role", "4", "--yes", "--controller", "10.1.2.3:5000")
    assert ok.returncode == 0 and actions(ok)[-1].endswith("host --ram-limit 128 --controller 10.1.2.3:5000")
    controller = machine.run("--dry-run", "--role", "2", "--yes")
    assert controller.returncode == 0, "the controller itself needs no address"


def test_ec2_by_hypervisor_uuid_and_unreadable_dmi_means_plain_linux(machine: Machine) -> None:
    (machine.sysfs / "hypervisor").mkdir()
    (machine.sysfs / "hypervisor/uuid").write_text("ec2e1916-9099-7caf-fd21-012345abcdef\n")
    assert "platform: cloud (aws)" in machine.run("--dry-run", "--role", "2").stderr
    (machine.sysfs / "hypervisor/uuid").unlink()
    (machine.sysfs / "class/dmi/id/sys_vendor").mkdir(parents=True)  # a directory: `cat` fails like EACCES
    assert "platform: linux" in machine.run("--dry-run", "--role", "2").stderr


def test_never_asks_without_a_terminal_or_in_ci_and_says_what_to_pass(machine: Machine) -> None:
    proc = machine.run("--dry-run")
    assert proc.returncode == 1 and "no role: pass --role 1-5" in proc.stderr
    proc = machine.run("--dry-run", CI="true")
    assert proc.returncode == 1 and "no role" in proc.stderr
    assert machine.run("--dry-run", BXTHRE3_ROLE="all").returncode == 0
    bad = machine.run("--dry-run", "--role", "7")
    assert bad.returncode == 1 and "unknown role '7'" in bad.stderr
    bad = machine.run("--dry-run", "--role", "5", "--ram-per-node", "lots")
    assert bad.returncode == 1 and "whole number of MB" in bad.stderr
    bad = machine.run("--dry-run", "--bogus")
    assert bad.returncode == 1 and "unknown option '--bogus'" in bad.stderr


def test_the_role_file_keeps_the_token_private(machine: Machine) -> None:
    machine.installed()
    machine.stub("fake-bxthre3", 'echo "ran $* token=$BXTHRE3_TOKEN"')
    (machine.venv / "bin" / "bxthre3").unlink()
    (machine.venv / "bin" / "bxthre3").symlink_to(machine.bin / "fake-bxthre3")
    proc = machine.run("--role", "4", "--controller", "10.0.0.9", "--token", TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ran host --ram-limit 128 --controller 10.0.0.9 token={TOKEN}"
    role_env = machine.home / ".config/bxthre3/role.env"
    assert oct(role_env.stat().st_mode & 0o777) == "0o600" and f"BXTHRE3_TOKEN={TOKEN}" in role_env.read_text()


def test_what_bootstrap_starts_logs_in_the_checkouts_logs_folder_unless_told_otherwise(machine: Machine) -> None:
    machine.installed()
    machine.stub("fake-bxthre3", 'echo "ran $* logs=$BXTHRE3_LOG_DIR"')
    (machine.venv / "bin" / "bxthre3").unlink()
    (machine.venv / "bin" / "bxthre3").symlink_to(machine.bin / "fake-bxthre3")
    role = machine.run("--role", "4", "--controller", "10.0.0.9", "--token", TOKEN)
    assert role.stdout.strip() == f"ran host --ram-limit 128 --controller 10.0.0.9 logs={REPO}/logs", role.stderr
    assert machine.run("run", "x.yaml").stdout.strip() == f"ran run x.yaml logs={REPO}/logs"
    assert machine.run("--", "status").stdout.strip() == f"ran status logs={REPO}/logs"
    chosen = machine.run("run", "x.yaml", BXTHRE3_LOG_DIR="/srv/bx-logs")
    assert chosen.stdout.strip() == "ran run x.yaml logs=/srv/bx-logs", "an exported BXTHRE3_LOG_DIR wins"


def test_shell_scripts_pass_bash_n_and_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(BOOTSTRAP)], check=True, timeout=30)
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is missing in CI (./bootstrap.sh test installs it)")
        pytest.skip("shellcheck is not installed (./bootstrap.sh test installs it)")
    proc = subprocess.run(["shellcheck", str(BOOTSTRAP)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    proc = subprocess.run(["shellcheck", "-s", "sh", *map(str, TERMUX_SCRIPTS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_termux_widget_scripts_start_once_and_stop(tmp_path: Path) -> None:
    home, fake_repo = tmp_path / "home", tmp_path / "repo"
    (home / ".config/bxthre3").mkdir(parents=True)
    fake_repo.mkdir()
    (fake_repo / "bootstrap.sh").write_text('#!/bin/sh\necho "started $* token=$BXTHRE3_TOKEN"\nexec sleep 60\n')
    (fake_repo / "bootstrap.sh").chmod(0o755)
    (home / ".config/bxthre3/role.env").write_text(
        f"BXTHRE3_ROLE=node-manager\nRAM_PER_NODE=192\nBXTHRE3_CONTROLLER=''\nBXTHRE3_TOKEN={TOKEN}\n"
        f"BXTHRE3_HOME={fake_repo}\n"
    )
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    start = subprocess.run(["sh", str(REPO / "termux/shortcuts/bxthre3-start")], capture_output=True, text=True,
                           env=env, timeout=30)  # fmt: skip
    assert start.returncode == 0 and "started node-manager" in start.stdout, start.stderr
    pid = int((home / ".cache/bxthre3/role.pid").read_text())
    try:
        again = subprocess.run(["sh", str(REPO / "termux/shortcuts/bxthre3-start")], capture_output=True, text=True,
                               env=env, timeout=30)  # fmt: skip
        assert "already running" in again.stdout
        import time

        deadline = time.monotonic() + 10
        log = home / ".cache/bxthre3/role.log"
        while time.monotonic() < deadline and "started" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.05)
        assert f"started --role node-manager --ram-per-node 192 --yes token={TOKEN}" in log.read_text()
        stop = subprocess.run(["sh", str(REPO / "termux/shortcuts/bxthre3-stop")], capture_output=True, text=True,
                              env=env, timeout=30)  # fmt: skip
        assert f"stopped (pid {pid})" in stop.stdout
        assert not (home / ".cache/bxthre3/role.pid").exists()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


TERMUX_DEBS = {"python", "clang", "cmake", "make", "pkg-config", "libzmq", "python-psutil", "termux-api"}


def _termux_reinstall(machine: Machine, cpu: str, probe_says: str) -> None:
    """A phone with everything from pkg and a venv whose install stamp is stale; `uname -m` says `cpu`, and
    the venv's Python logs pip runs and answers the wasmtime load check with `probe_says`."""
    machine.installed_debs = set(TERMUX_DEBS)
    machine.termux()
    machine.installed()
    (machine.venv / ".bxthre3-installed").unlink()
    machine.stub("uname", f'[ "$1" = -m ] && echo {cpu}')
    python = machine.venv / "bin" / "python"
    python.write_text(
        f"""#!/bin/sh
case "$*" in
  *"-m pip"*) echo "pip $*" >> "$STUB_LOG" ;;
  *wasmtime_problem*) echo '{probe_says}' ;;
esac
"""
    )


def test_termux_64bit_keeps_android_wasmtime_wheel_that_loads(machine: Machine) -> None:
    _termux_reinstall(machine, "aarch64", "")
    proc = machine.run("install")
    assert proc.returncode == 0, proc.stderr
    pip = (machine.root / "stub.log").read_text().splitlines()
    assert any("--only-binary wasmtime" in line and line.endswith(f"-e {REPO}[wasmtime]") for line in pip), pip
    assert not any("uninstall" in line for line in pip)


def test_termux_64bit_removes_a_wasmtime_that_does_not_load(machine: Machine) -> None:
    _termux_reinstall(machine, "x86_64", "ImportError: wasmtime: no native library")
    proc = machine.run("install")
    assert proc.returncode == 0, proc.stderr
    pip = (machine.root / "stub.log").read_text().splitlines()
    assert any("--only-binary wasmtime" in line for line in pip), pip
    assert any("-m pip uninstall" in line and line.endswith("--yes wasmtime") for line in pip), pip
    assert "wasmtime installed but does not load here (ImportError: wasmtime: no native library)" in proc.stderr


def test_termux_32bit_does_not_try_wasmtime(machine: Machine) -> None:
    _termux_reinstall(machine, "armv7l", "")
    proc = machine.run("install")
    assert proc.returncode == 0, proc.stderr
    pip = (machine.root / "stub.log").read_text().splitlines()
    assert pip and not any("wasmtime" in line for line in pip), pip
    assert "no wasmtime wheel for armv7l Android (64-bit only)" in proc.stderr


def on_terminal(machine: Machine, answers: list[str], *args: str) -> tuple[int, str]:
    """Run bootstrap.sh on a pseudo-terminal with ``answers`` typed ahead, one line each; returns the exit
    code and everything the terminal showed. Bounded: killed (by PID) after 30 s."""
    import select
    import time

    master, slave = os.openpty()
    proc = subprocess.Popen(
        ["bash", str(BOOTSTRAP), *args], stdin=slave, stdout=slave, stderr=slave, env=machine.env,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    shown = b""
    try:
        os.write(master, "".join(a + "\n" for a in answers).encode())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        os.close(master)
    return proc.returncode, shown.decode("utf-8", "replace").replace("\r\n", "\n")


def fake_proc(machine: Machine, available_mb: int, cpus: int) -> None:
    proc_root = machine.root / "proc"
    proc_root.mkdir(exist_ok=True)
    (proc_root / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_mb * 1024} kB\n")
    (proc_root / "cpuinfo").write_text("".join(f"processor\t: {i}\nflags\t: x\n\n" for i in range(cpus)))
    machine.env["PROC_ROOT"] = str(proc_root)


def test_interactive_questions_are_asked_again_and_role_3_is_asked_for_the_token(machine: Machine) -> None:
    """Papercuts: a typo ended the setup; role 3 was never asked for the token; "177 node(s)" under a cap of 2."""
    fake_proc(machine, available_mb=23_000, cpus=2)
    code, shown = on_terminal(machine, ["9", "3", "99999", "lots", "", "bxt1-short", TOKEN], "--dry-run")
    assert code == 0, shown
    assert "unknown role '9'" in shown
    assert "RAM per node must be between 16 and 4096 MB" in shown and "not 99999" in shown
    assert "RAM per node must be a whole number of MB, not 'lots'" in shown
    assert "[128: 2 node(s): 23000 MB available would fit 175, at most 2 (one per CPU; --max-nodes)]" in shown
    assert "Cluster token" in shown and "that is not a cluster token" in shown
    assert f"would run: {machine.venv}/bin/bxthre3 node-manager --ram-per-node 128" in shown


def test_a_link_to_another_checkout_is_not_taken_over_silently(machine: Machine) -> None:
    """Papercut: bootstrap silently repointed ~/.local/bin/bxthre3 at another checkout."""
    link = machine.home / ".local/bin/bxthre3"
    link.parent.mkdir(parents=True)
    link.symlink_to("/elsewhere/.venv/bin/bxthre3")
    code, shown = on_terminal(machine, ["n", ""], "--dry-run", "--role", "5")
    assert code == 0, shown
    assert f"{link} points at /elsewhere/.venv/bin/bxthre3; point it at this checkout" in shown
    assert f"left {link} pointing at /elsewhere" in shown and "ln -sfn" not in shown
    quiet = machine.run("--dry-run", "--role", "5")
    assert "run with --yes (or answer on a terminal) to point it here" in quiet.stderr
    assert not any(a.startswith("ln -sfn") for a in actions(quiet))
    told = machine.run("--dry-run", "--role", "5", "--yes")
    assert f"repointing {link} from /elsewhere/.venv/bin/bxthre3" in told.stderr
    assert f"ln -sfn {machine.venv}/bin/bxthre3 {link}" in actions(told)


def test_bootstrap_limits_are_the_cli_and_tui_limits(machine: Machine) -> None:
    """Papercut: the CLI, the TUI and bootstrap each accepted a different RAM range."""
    from bxthre3.common.user_input import MAX_NODE_RAM_MB, MIN_NODE_RAM_MB
    from bxthre3.tui.role_form import MAX_RAM_MB, MIN_RAM_MB

    text = BOOTSTRAP.read_text()
    assert f"\nMIN_NODE_RAM_MB={MIN_NODE_RAM_MB}\n" in text and f"\nMAX_NODE_RAM_MB={MAX_NODE_RAM_MB}\n" in text
    assert (MIN_RAM_MB, MAX_RAM_MB) == (MIN_NODE_RAM_MB, MAX_NODE_RAM_MB)
    for bad in ("99999", "8", "1048577"):
        proc = machine.run("--dry-run", "--role", "3", "--ram-per-node", bad)
        assert proc.returncode == 1 and "must be between 16 and 4096 MB" in proc.stderr and f"not {bad}" in proc.stderr
    proc = machine.run("--dry-run", "--role", "4", "--token", "bxt1-typo")
    assert proc.returncode == 1 and "is not a cluster token" in proc.stderr
