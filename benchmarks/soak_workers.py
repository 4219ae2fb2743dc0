"""Soak: several workers on one study while one of them is killed at a fixed interval.

Starts `--workers` independent ``autospk-study optimize`` processes on one study (as a
cluster would, one per host), kills one at random with SIGKILL every `--kill-every` seconds
and starts a replacement, until the study holds `--trials` complete trials. Then it checks
what a crash must not cost and prints a table:

- lost: failed trials whose architecture was never completed by a retry;
- stuck: trials still RUNNING or WAITING after every worker has exited;
- duplicates: architectures evaluated twice (a twin that copied its result does not count);
- peak connections: the most connections the database held (PostgreSQL only).

Everything runs on this host against a local database; the run stops by itself after
`--max-seconds`.

    python benchmarks/soak_workers.py [--storage postgresql://postgres@127.0.0.1:5432/test]
        [--checkpoint autospk-runs/digits-supernet.pt] [--trials 200] [--workers 4] [--kill-every 20]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

CLI = [sys.executable, "-m", "studies.cli"]


def _start(storage: str, name: str, trials: int, log) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", str(trials),
                             "--no-progress"], stdout=log, stderr=log, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


class _ConnectionCounter:
    """Counts the connections PostgreSQL holds for our database, on one connection of its own."""

    def __init__(self, storage: str) -> None:
        import sqlalchemy

        self._text = sqlalchemy.text
        self._conn = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool).connect()
        self.peak = 0

    def poll(self) -> None:
        count = self._conn.execute(self._text("SELECT count(*) FROM pg_stat_activity "
                                              "WHERE datname = current_database()")).scalar_one()
        self.peak = max(self.peak, int(count) - 1)

    def close(self) -> None:
        self._conn.close()


def _recovered(trial, trials) -> bool:
    """Whether a failed trial's work was done after all: its genome completed, or a retry of it
    (ours: user attr ``retry_of``; Optuna's heartbeat retry: system attr ``failed_trial``) was
    recovered in turn. A trial killed before it had a genome is recovered by its retry."""
    complete = [t.params for t in trials if t.state == TrialState.COMPLETE]
    if trial.params and trial.params in complete:
        return True
    retries = [t for t in trials if t.user_attrs.get("retry_of") == trial.number
               or t.system_attrs.get("failed_trial") == trial.number]
    return any(r.state == TrialState.COMPLETE or (r.state == TrialState.FAIL and _recovered(r, trials))
               for r in retries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--checkpoint", default="autospk-runs/digits-supernet.pt")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default="autospk-runs/soak.log")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not Path(args.checkpoint).exists():
        sys.exit(f"no checkpoint at {args.checkpoint}; train one with `autospk-study train-supernet`")
    name = f"soak-{uuid.uuid4().hex[:8]}"
    subprocess.run([*CLI, "create", "--storage", args.storage, "--study-name", name, "--objective", "pareto",
                    "--checkpoint", args.checkpoint, "--population-size", "20", "--heartbeat-interval", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    rng = random.Random(args.seed)
    counter = _ConnectionCounter(args.storage) if args.storage.startswith("postgresql") else None
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.load_study(study_name=name, storage=args.storage)
    start = time.monotonic()
    kills = 0
    with open(args.log, "w") as log:
        procs = [_start(args.storage, name, args.trials, log) for _ in range(args.workers)]
        next_kill = start + args.kill_every
        while time.monotonic() - start < args.max_seconds:
            time.sleep(0.5)
            if counter is not None:
                counter.poll()
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if done >= args.trials:
                break
            if time.monotonic() >= next_kill:
                victim = rng.randrange(len(procs))
                os.killpg(procs[victim].pid, signal.SIGKILL)
                procs[victim].wait()
                procs[victim] = _start(args.storage, name, args.trials, log)
                kills += 1
                next_kill += args.kill_every
            for i, proc in enumerate(procs):
                if proc.poll() is not None and done < args.trials:
                    procs[i] = _start(args.storage, name, args.trials, log)
        for proc in procs:
            while proc.poll() is None and time.monotonic() - start < args.max_seconds + 120:
                time.sleep(0.5)
                if counter is not None:
                    counter.poll()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    elapsed = time.monotonic() - start
    if counter is not None:
        counter.close()

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    completed_archs = {t.user_attrs.get("arch_id") for t in complete}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    lost = [t.number for t in failed if not _recovered(t, trials)]
    stuck = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    evaluated = [t.user_attrs["arch_id"] for t in complete if "duplicate_of" not in t.user_attrs]
    print(f"study {name} on {args.storage.split('@')[-1]}: {args.workers} workers, one killed every "
          f"{args.kill_every:g} s, target {args.trials} complete trials; {elapsed:.0f} s, log {args.log}")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| workers killed (SIGKILL) | {kills} |")
    print(f"| complete trials | {len(complete)} |")
    print(f"| failed trials (killed mid-trial) | {len(failed)} |")
    print(f"| lost (failed, never completed by a retry) | {len(lost)} |")
    print(f"| stuck RUNNING/WAITING at the end | {len(stuck)} |")
    print(f"| duplicate architectures evaluated | {len(evaluated) - len(set(evaluated))} |")
    print(f"| distinct architectures complete | {len(completed_archs)} |")
    if counter is not None:
        print(f"| peak database connections (polled every 0.5 s) | {counter.peak} |")


if __name__ == "__main__":
    main()
