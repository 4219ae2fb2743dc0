"""Soak: workers on one study while one is killed at a fixed interval, on every storage kind.

For each storage (--storages: journal, mariadb, postgresql) it creates a study and starts
--workers independent ``autospk-study optimize`` processes (as a cluster would, one per host),
then every --kill-every seconds SIGKILLs one: every other kill waits for a worker that is
inside a storage write (holding the journal's lock, or inside a database transaction before
its commit: `soak_hooks`), the rest kill a random ``optimize`` with its worker (a host going
down) and start a replacement. One architecture, enqueued first, is poison: evaluating it
kills the worker. When the study holds --trials complete trials, every process is stopped and
one last ``optimize`` finishes what was left. Then, per storage:

- kills (and how many inside a storage write); complete and failed trials;
- lost: failed trials whose architecture was never completed (by a retry) nor given up on;
- stuck: trials RUNNING or WAITING after the last optimize;
- duplicates: architectures evaluated twice (a twin that copied its result does not count);
- claimed, never evaluated: architectures a trial claimed that no trial completed (the
  poison architecture, given up on, not counted);
- the poison architecture's tries and what `show` records for it;
- the longest wait for the journal's lock; the peak connections the database held.

Targets: lost 0, stuck 0, duplicates 0, claimed-never-evaluated 0, longest lock wait < 2 s.
Everything runs on this host against its local databases; each storage stops by itself after
--max-seconds.

    python benchmarks/soak_workers.py [--storages journal mariadb postgresql]
        [--checkpoint autospk-runs/digits-supernet.pt] [--trials 200] [--workers 4] [--kill-every 20]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "studies.cli"]
URLS = {
    "journal": None,  # a file in the run's folder
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}
HOLD = 0.01
"""Seconds each storage write lasts longer under the soak's hooks (a window to kill it in)."""


class _ConnectionCounter:
    """Counts the connections the database holds for our database, on one connection of its own."""

    def __init__(self, storage: str) -> None:
        import sqlalchemy

        self._text = sqlalchemy.text
        self._conn = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool).connect()
        self._query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       if storage.startswith("postgresql") else
                       "SELECT count(*) FROM information_schema.processlist WHERE db = database()")
        self.peak = 0

    def poll(self) -> None:
        count = self._conn.execute(self._text(self._query)).scalar_one()
        self.peak = max(self.peak, int(count) - 1)

    def close(self) -> None:
        self._conn.close()


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def finish(storage: str, name: str, study: optuna.Study, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One last optimize (no faults) that finishes what the killed workers left: the retries of
    their trials and the trials still RUNNING under a dead worker (failed and retried by it).
    Its target is the trials finished so far plus those still to run, since a study that
    already holds its target starts no worker."""
    live = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    target = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) + len(live)
    return subprocess.run([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", str(target),
                           "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True)


def _soak(kind: str, args: argparse.Namespace, folder: Path) -> dict:
    from nas.study_index import ARCH_ATTR, ARCH_KEY, GAVE_UP_ATTR
    from studies.results import given_up
    from studies.storage import open_storage

    storage = URLS[kind] or f"journal://{folder}/soak.log"
    marks, tries, waits = folder / "marks", folder / "tries.log", folder / "lock-waits.log"
    marks.mkdir()
    name = f"soak-{uuid.uuid4().hex[:8]}"
    subprocess.run([*CLI, "create", "--storage", storage, "--study-name", name, "--objective", "pareto",
                    "--checkpoint", args.checkpoint, "--population-size", "20", "--heartbeat-interval", "2",
                    "--no-enqueue-largest"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    from studies.study import load

    _, settings = load(storage, name)
    poison = settings.space.smallest()
    study.enqueue_trial(settings.space.params_from_config(poison))
    site = folder / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import soak_hooks\nsoak_hooks.install()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "benchmarks"), str(ROOT)]),
           "AUTOSPK_SOAK": f"{marks},{tries},{poison.arch_id},{HOLD}", "AUTOSPK_JOURNAL_LOCK_WAITS": str(waits)}
    log = open(folder / "workers.log", "w")

    def start() -> subprocess.Popen:
        return subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials",
                                 str(args.trials), "--no-progress"], stdout=log, stderr=log, cwd=ROOT, env=env,
                                start_new_session=True)

    rng = random.Random(args.seed)
    counter = _ConnectionCounter(storage) if kind != "journal" else None
    start_at = time.monotonic()
    kills = in_write = 0
    procs = [start() for _ in range(args.workers)]
    next_kill = start_at + args.kill_every
    while time.monotonic() - start_at < args.max_seconds:
        time.sleep(0.25)
        if counter is not None:
            counter.poll()
        if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= args.trials:
            break
        if time.monotonic() >= next_kill:
            next_kill += args.kill_every
            kills += 1
            if kills % 2:  # inside a storage write: a worker that holds a mark
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    held = [int(p.name) for p in marks.iterdir()]
                    if held:
                        try:
                            os.kill(held[0], signal.SIGKILL)
                            in_write += 1
                            (marks / str(held[0])).unlink(missing_ok=True)
                            break
                        except ProcessLookupError:  # a mark left by a process killed before
                            (marks / str(held[0])).unlink(missing_ok=True)
                    time.sleep(0.002)
            else:  # a host going down: an optimize and its worker
                victim = rng.randrange(len(procs))
                os.killpg(procs[victim].pid, signal.SIGKILL)
                procs[victim].wait()
                procs[victim] = start()
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                procs[i] = start()
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    elapsed = time.monotonic() - start_at
    env.pop("AUTOSPK_SOAK")
    final = finish(storage, name, study, env)
    if counter is not None:
        counter.poll()
        counter.close()
    log.close()

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    evaluated = [t.user_attrs[ARCH_ATTR] for t in done
                 if "duplicate_of" not in t.user_attrs and ARCH_ATTR in t.user_attrs]
    abandoned = {g.arch_id for g in given_up(study)}
    claimed = {t.system_attrs[ARCH_KEY] for t in trials if ARCH_KEY in t.system_attrs}
    died = [t for t in trials if t.state == TrialState.FAIL and GAVE_UP_ATTR not in t.user_attrs]
    lost = [t.number for t in died if ARCH_KEY in t.system_attrs
            and t.system_attrs[ARCH_KEY] not in set(evaluated) | abandoned]
    poison_tries = sum(line.split()[0] == poison.arch_id for line in tries.read_text().splitlines())
    lock_waits = [float(line.split()[0]) for line in waits.read_text().splitlines()] if waits.exists() else []
    causes = [g.cause for g in given_up(study) if g.arch_id == poison.arch_id]
    return {
        "storage": kind, "seconds": elapsed, "kills": kills, "in_write": in_write,
        "complete": sum(t.state == TrialState.COMPLETE for t in trials), "failed": len(died), "lost": len(lost),
        "stuck": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        "duplicates": len(evaluated) - len(set(evaluated)),
        "claimed_never_evaluated": len(claimed - set(evaluated) - abandoned),
        "poison": f"{poison_tries} tries, " + (f"given up: {causes[0]}" if causes else "not given up"),
        "lock_wait": f"{max(lock_waits):.3f}" if lock_waits else ("0" if kind == "journal" else "n/a"),
        "connections": str(counter.peak) if counter is not None else "n/a",
        "final_rc": final.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storages", nargs="+", default=list(URLS), choices=list(URLS))
    parser.add_argument("--checkpoint", default="autospk-runs/digits-supernet.pt")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep each run's folder (logs) here")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.checkpoint = str(Path(args.checkpoint).resolve())
    if not Path(args.checkpoint).exists():
        sys.exit(f"no checkpoint at {args.checkpoint}; train one with `autospk-study quickstart` or train-supernet")
    rows = []
    for kind in args.storages:
        with tempfile.TemporaryDirectory() as tmp:
            folder = (args.keep / kind) if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            rows.append(_soak(kind, args, folder))
            print(f"{kind}: done in {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    print(f"{args.workers} workers, a SIGKILL every {args.kill_every:g} s (every other one inside a storage write), "
          f"target {args.trials} complete trials, one poison architecture; then one last optimize")
    print()
    print("| storage | kills (in a write) | complete | failed | lost | stuck | duplicates | claimed, never evaluated "
          "| poison architecture | longest journal lock wait, s | peak connections |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['storage']} | {r['kills']} ({r['in_write']}) | {r['complete']} | {r['failed']} | {r['lost']} | "
              f"{r['stuck']} | {r['duplicates']} | {r['claimed_never_evaluated']} | {r['poison']} | {r['lock_wait']} "
              f"| {r['connections']} |")
    bad = [r["storage"] for r in rows if r["final_rc"] != 0]
    if bad:
        print(f"\nthe last optimize failed on: {', '.join(bad)}")


if __name__ == "__main__":
    main()
