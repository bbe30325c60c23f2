#!/usr/bin/env python3
"""Runs every test binary of the workspace, two at a time.

Most of the suite's wall time is spent waiting: for OpenBao to elect a leader, for
autopilot to stabilize, for a CronJob's schedule. `cargo test` runs one test binary after
another, so those waits add up; here the binaries run side by side in lanes
(`VAULTKEEPER_TEST_JOBS`, default 2), the longest first.

Every binary's output goes to `target/test-logs/<package>.<target>.log`; a binary that
fails has its whole log printed. A binary that failed while others ran beside it is run
once more on its own, after the rest: if it passes then, it is reported as FLAKY UNDER
LOAD (the run still passes, and the line says so); if it fails again, the run fails. Every
end-to-end test file uses its own simulated-cluster addresses ("slots"), so files never
share a port, a namespace or a data directory.

Usage: scripts/run-tests.py   (after `cargo test --workspace --no-run` has built everything;
the script builds again with `--message-format=json` to learn the binaries' paths, which
is a no-op when they are up to date).
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Seconds each long binary took in a fresh-clone run (2 CPUs, one at a time): the longest
# start first so the lanes end together. Binaries not named here are assumed short.
MEASURED = {
    "vaultkeeper-e2e.custody": 304,
    "vaultkeeper-vault.real_openbao": 261,
    "vaultkeeper-e2e.scale_churn": 219,
    "vaultkeeper-e2e.backup": 139,
    "vaultkeeper-e2e.restore": 130,
    "vaultkeeper-e2e.monitoring": 121,
    "vaultkeeper-e2e.operator_roll": 116,
    "vaultkeeper-e2e.prometheus": 110,
    "vaultkeeper-e2e.hostile": 92,
    "vaultkeeper-e2e.adopt": 91,
    "vaultkeeper-e2e.operator": 84,
    "vaultkeeper-e2e.config": 80,
    "vaultkeeper-e2e.operator_scale": 68,
    "vaultkeeper-e2e.snapshot_first": 64,
    "vaultkeeper-e2e.sandbox": 58,
    "vaultkeeper-sim.real_pods": 57,
    "vaultkeeper-e2e.operator_http": 52,
    "vaultkeeper-backup.real_s3": 52,
    "vaultkeeper-e2e.operator_faults": 49,
    "vaultkeeper-e2e.operator_ha": 47,
    "vaultkeeper-e2e.operator_crash": 44,
    "vaultkeeper-backup.real_stores": 34,
    "vaultkeeper-e2e.operator_delete": 30,
    "vaultkeeper-e2e.operator_invalid": 45,
    "vaultkeeper-sim.runtime": 23,
    "vaultkeeper-e2e.helm_install": 14,
}
DEFAULT_WEIGHT = 10

# These measure time against stated bounds or drive the cluster through churn: they run
# alone, after the lanes, so a neighbour's CPU use never decides their result.
ALONE = {"vaultkeeper-e2e.scale_churn"}


def binaries():
    """(name, executable, package dir) of every test binary, and the vaultkeeper binary."""
    out = subprocess.run(
        ["cargo", "test", "--workspace", "--locked", "--no-run", "--message-format=json"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    tests, vaultkeeper_bin = [], None
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        target = msg["target"]
        package_dir = str(Path(msg["manifest_path"]).parent)
        package = Path(package_dir).name
        package = {"tests": "vaultkeeper-e2e"}.get(package, package)
        if msg["profile"]["test"]:
            kind = target["kind"][0]
            name = f"{package}.{target['name'] if kind != 'lib' else 'lib'}"
            if kind == "bin":
                name = f"{package}.bin-{target['name']}"
            tests.append((name, msg["executable"], package_dir))
        elif target["name"] == "vaultkeeper" and "bin" in target["kind"]:
            vaultkeeper_bin = msg["executable"]
    return tests, vaultkeeper_bin


def run_one(name, exe, cwd, env, log_dir):
    log = log_dir / f"{name}.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        code = subprocess.run([exe], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - started
    summary = ""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("test result:"):
            summary = line[len("test result: "):]
    return code, elapsed, summary, log


def main():
    jobs = int(os.environ.get("VAULTKEEPER_TEST_JOBS", "2"))
    tests, vaultkeeper_bin = binaries()
    only = os.environ.get("VAULTKEEPER_TEST_ONLY")
    if only:
        # A comma-separated list of names (as printed) to run, for trying the runner out.
        wanted = only.split(",")
        tests = [t for t in tests if t[0] in wanted]
    env = dict(os.environ)
    if vaultkeeper_bin and "VAULTKEEPER_BIN" not in env:
        # The end-to-end tests' pods run this binary; without it each test file would
        # call cargo itself, side by side.
        env["VAULTKEEPER_BIN"] = vaultkeeper_bin
    log_dir = ROOT / "target" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    tests.sort(key=lambda t: -MEASURED.get(t[0], DEFAULT_WEIGHT))
    queue = [t for t in tests if t[0] not in ALONE]
    alone = [t for t in tests if t[0] in ALONE]
    lock = threading.Lock()
    results = {}
    failed_in_lanes = []
    wall = time.monotonic()

    def report(name, code, elapsed, summary, log, note=""):
        status = "ok  " if code == 0 else "FAIL"
        print(f"{status} {name:<40} {elapsed:7.1f} s  {summary}{note}", flush=True)
        if code != 0:
            print(f"----- {log} -----", flush=True)
            print(log.read_text(errors="replace"), flush=True)
            print(f"----- end of {name} -----", flush=True)

    def lane():
        while True:
            with lock:
                if not queue:
                    return
                name, exe, cwd = queue.pop(0)
            code, elapsed, summary, log = run_one(name, exe, cwd, env, log_dir)
            with lock:
                results[name] = (code, elapsed)
                if code != 0:
                    failed_in_lanes.append((name, exe, cwd))
                    print(f"FAIL {name:<40} {elapsed:7.1f} s  {summary} (beside another binary; runs again alone at the end)", flush=True)
                else:
                    report(name, code, elapsed, summary, log)

    print(f"running {len(tests)} test binaries, {jobs} at a time; logs in {log_dir}", flush=True)
    threads = [threading.Thread(target=lane) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    failures, flaky = [], []
    for name, exe, cwd in alone:
        code, elapsed, summary, log = run_one(name, exe, cwd, env, log_dir)
        report(name, code, elapsed, summary, log, " (alone)")
        if code != 0:
            failures.append(name)
    for name, exe, cwd in failed_in_lanes:
        first_log = log_dir / f"{name}.log"
        kept = log_dir / f"{name}.beside.log"
        first_log.replace(kept)
        code, elapsed, summary, log = run_one(name, exe, cwd, env, log_dir)
        if code == 0:
            flaky.append(name)
            report(name, code, elapsed, summary, log, f" (alone) -- FLAKY UNDER LOAD: it failed beside another binary, see {kept}")
            print(kept.read_text(errors="replace"), flush=True)
        else:
            report(name, code, elapsed, summary, log, " (alone, failed again)")
            failures.append(name)

    minutes = (time.monotonic() - wall) / 60
    print(f"\n{len(tests)} test binaries in {minutes:.1f} min: "
          f"{len(tests) - len(failures)} passed, {len(failures)} failed, {len(flaky)} flaky under load", flush=True)
    for name in flaky:
        print(f"  FLAKY UNDER LOAD: {name}", flush=True)
    for name in failures:
        print(f"  FAILED: {name}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
