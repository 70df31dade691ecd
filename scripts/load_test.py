"""A bounded load test of a VisNet service on loopback: a fixed number of requests and a time limit.

    .venv/bin/python scripts/load_test.py --start --workers 1 --requests 2000 --time-limit 120
    .venv/bin/python scripts/load_test.py --base http://127.0.0.1:8000 --requests 300 --time-limit 60

``--start`` runs its own embedded Redis, ``--workers`` RQ workers and gunicorn (``VISNET_WEB_WORKERS``
processes) in a temporary instance folder, with the rate limits off so they do not shape the
traffic; ``--base`` tests a service that is already running (raise its VISNET_RATE_LIMIT_* first:
every request here comes from one address, and each 429 is counted and reported).

First one job is submitted and waited for (the worker has then run once, and downloads are in the mix
from the first request; it is not counted). Then ``--concurrency`` threads, each with its own
keep-alive session and ``--think`` seconds between requests, send a mix until ``--requests``
requests have gone out or ``--time-limit`` seconds have passed:

* ``upload``: POST /api/jobs with one of the example photos and one of a few option sets, so the
  first uploads of a combination are new jobs and later ones reuse them (200 or 202, ``reused``);
* ``poll``: GET /api/jobs/<id> of a submitted job;
* ``file``: GET one PNG of a finished job; ``archive``: GET its archive.zip;
* ``health``: GET /api/health.

Then it waits for the queue to drain (nothing queued, RQ's started registry empty, from
/api/health). It reports requests per second, latency p50/p99/max per kind, status counts, jobs
finished per minute per worker (new jobs over the time from the first new job to the drained
queue), the RSS of the gunicorn and worker processes (the largest and the total, found again every
half second, since gunicorn recycles its processes) at the start, after the ``--warmup`` requests,
halfway, at the peak and at the end, and the started registry's size after draining. ``--json``
writes it all.

Exit status 0 when no answer was a 5xx other than 503, the queue drained and the started registry
is empty; 1 otherwise.
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

EXAMPLES = PROJECT_ROOT / "static" / "examples"
MIX = {"upload": 0.10, "poll": 0.45, "file": 0.30, "archive": 0.05, "health": 0.10}
OPTION_SETS = (
    {"layers": "pools", "top_k": "1"},
    {"layers": "pools", "top_k": "2"},
    {"layers": "block3_pool,block5_pool", "top_k": "3"},
    {"layers": "block2_pool", "top_k": "2", "mode": "per-layer"},
    {"method": "feature-maps", "layer": "block1_conv1"},
    {"method": "channel-rank", "layer": "block5_conv3", "channel": "7"},
)
MiB = 1024 * 1024


# --- traffic ----------------------------------------------------------------------------------

class Traffic:
    """What the threads share: the jobs seen so far and every request's outcome."""

    def __init__(self, base, photos, option_sets, requests_limit, time_limit, warmup, seed, think=0.0):
        self.base, self.photos, self.option_sets, self.think = base, photos, option_sets, think
        self.requests_limit, self.time_limit, self.warmup = requests_limit, time_limit, warmup
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.sent = 0
        self.samples = []  # (kind, status, seconds)
        self.jobs = {}  # id -> {"new": bool, "submitted": t, "finished": t or None, "files": [...]}
        self.started_at = None
        self.warmed_up = threading.Event()
        self.halfway = threading.Event()

    def next_ticket(self):
        with self.lock:
            if self.sent >= self.requests_limit or time.monotonic() - self.started_at > self.time_limit:
                return None
            self.sent += 1
            if self.sent == self.warmup:
                self.warmed_up.set()
            if self.sent == max(self.warmup, self.requests_limit // 2):
                self.halfway.set()
            kind = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
            finished = [job_id for job_id, job in self.jobs.items() if job["files"]]
            if kind in ("file", "archive") and not finished:
                kind = "poll"
            if kind == "poll" and not self.jobs:
                kind = "upload"
            if kind == "upload":
                return kind, (self.random.choice(self.photos), self.random.choice(self.option_sets))
            if kind == "poll":
                return kind, self.random.choice(list(self.jobs))
            if kind == "file":
                job_id = self.random.choice(finished)
                return kind, self.random.choice(self.jobs[job_id]["files"])
            if kind == "archive":
                return kind, self.random.choice(finished)
            return kind, None

    def record(self, kind, status, seconds):
        with self.lock:
            self.samples.append((kind, status, seconds))

    def saw_job(self, document, reused=None):
        now = time.monotonic()
        with self.lock:
            job = self.jobs.setdefault(document["id"], {"new": reused is False, "submitted": now, "finished": None,
                                                        "files": [], "job_seconds": None})
            job["status"], job["message"] = document["status"], document.get("message")
            if document["status"] == "finished" and job["finished"] is None:
                job["finished"] = now
                job["files"] = [entry["url"] for entry in document["files"]]
                job["job_seconds"] = (document.get("timings") or {}).get("total_seconds")


def one_request(session, traffic, kind, target):
    base = traffic.base
    started = time.perf_counter()
    if kind == "upload":
        photo, options = target
        response = session.post(f"{base}/api/jobs", data=options,
                                files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60)
    elif kind == "poll":
        response = session.get(f"{base}/api/jobs/{target}", timeout=60)
    elif kind == "file":
        response = session.get(base + target, timeout=60)
    elif kind == "archive":
        response = session.get(f"{base}/api/jobs/{target}/archive.zip", timeout=60)
    else:
        response = session.get(f"{base}/api/health", timeout=60)
    body = response.content  # read it all: the download is part of the latency
    elapsed = time.perf_counter() - started
    traffic.record(kind, response.status_code, elapsed)
    if kind in ("upload", "poll") and response.status_code in (200, 202) and body:
        document = response.json()
        traffic.saw_job(document, document.get("reused") if kind == "upload" else None)


def client_thread(traffic):
    with requests.Session() as session:
        while True:
            ticket = traffic.next_ticket()
            if ticket is None:
                return
            try:
                one_request(session, traffic, *ticket)
            except requests.RequestException as error:
                traffic.record(ticket[0], f"error: {type(error).__name__}", 0.0)
            if traffic.think:
                time.sleep(traffic.think)


def prime(base, photo, timeout):
    """Submit one job and wait for it, so that downloads are in the mix from the first request and
    the worker has run once; returns its finished document. It is not counted in the figures."""
    with requests.Session() as session:
        response = session.post(f"{base}/api/jobs", data=OPTION_SETS[0],
                                files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60)
        response.raise_for_status()
        job_id, deadline = response.json()["id"], time.monotonic() + timeout
        while time.monotonic() < deadline:
            document = session.get(f"{base}/api/jobs/{job_id}", timeout=30).json()
            if document["status"] == "finished":
                return document
            if document["status"] in ("failed", "canceled"):
                raise RuntimeError(f"the priming job {document['status']}: {document['message']}")
            time.sleep(0.2)
    raise RuntimeError(f"the priming job did not finish within {timeout} s")


# --- processes and memory ---------------------------------------------------------------------

def gunicorn_master(port):
    """The gunicorn master listening on ``port``: of the processes holding the socket (its workers
    inherit it), the one whose parent is none of them."""
    holders = gunicorn_processes(port)
    pids = {process.pid for process in holders}
    masters = [process for process in holders if process.ppid() not in pids]
    if len(masters) != 1:
        raise RuntimeError(f"found {len(masters)} gunicorn masters listening on port {port}")
    return masters[0]


def web_processes(master):
    try:
        return [master, *master.children()]
    except psutil.NoSuchProcess:
        return []


def gunicorn_processes(port):
    """The gunicorn master and workers listening on ``port`` (workers inherit the socket)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "gunicorn" not in " ".join(process.info["cmdline"] or []):
                continue
            if any(connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
                   for connection in process.net_connections(kind="inet")):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def worker_processes(health):
    """The worker processes on this machine. A live worker's name holds the pid of its process
    (``visnet-<host>-<pid>``) or of the supervisor that started it (``visnet-<host>-<pid>-<n>``):
    that process, if it runs worker.py, and its children."""
    prefix = f"visnet-{socket.gethostname()}-"
    found = {}
    for name in health["workers"]["names"]:
        if not name.startswith(prefix):
            continue
        for part in name[len(prefix):].split("-"):
            if not part.isdigit():
                continue
            try:
                process = psutil.Process(int(part))
                if "worker.py" not in " ".join(process.cmdline()):
                    continue
                for member in (process, *process.children(recursive=True)):
                    found[member.pid] = member
            except psutil.Error:
                continue
    return list(found.values())


class MemorySampler:
    """RSS of the web and the worker processes every ``interval`` seconds, found again each time
    (gunicorn replaces a process after ``max_requests``; a supervisor may restart a worker). Per group:
    the largest process and the total, at the start, after the warm-up, halfway, at the peak and at the
    end, and how many distinct processes were seen. A leak shows as growth from warm-up to halfway
    repeated from halfway to the end; a plateau does not."""

    MARKS = ("start", "after_warmup", "halfway", "end")

    def __init__(self, finders, interval=0.5):
        self.finders, self.interval = finders, interval  # {"web": callable -> [Process], ...}
        self.seen = defaultdict(set)
        self.marks = {"start": self.snapshot()}
        self.peak = {group: dict(sizes) for group, sizes in self.marks["start"].items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def snapshot(self):
        result = {}
        for group, find in self.finders.items():
            sizes = []
            for process in find():
                try:
                    sizes.append(process.memory_info().rss)
                    self.seen[group].add(process.pid)
                except psutil.Error:
                    pass
            result[group] = {"largest": max(sizes, default=0), "total": sum(sizes)}
        return result

    def _run(self):
        while not self._stop.wait(self.interval):
            for group, sizes in self.snapshot().items():
                for key, size in sizes.items():
                    self.peak[group][key] = max(self.peak[group][key], size)

    def begin(self):
        self._thread.start()

    def mark(self, name):
        self.marks[name] = self.snapshot()

    def finish(self):
        self._stop.set()
        self._thread.join()
        self.mark("end")
        self.marks.setdefault("after_warmup", self.marks["start"])
        self.marks.setdefault("halfway", self.marks["after_warmup"])
        report = {}
        for group in self.finders:
            report[group] = {"processes_seen": len(self.seen[group])}
            for key in ("largest", "total"):
                row = {f"{name}_mib": round(self.marks[name][group][key] / MiB, 1) for name in self.MARKS}
                row["peak_mib"] = round(self.peak[group][key] / MiB, 1)
                row["growth_after_warmup_mib"] = round(row["end_mib"] - row["after_warmup_mib"], 1)
                report[group][key] = row
        return report


# --- running and reporting -------------------------------------------------------------------

def health(base):
    return requests.get(f"{base}/api/health", timeout=30).json()


def drain(base, traffic, timeout):
    """Wait until nothing is queued or started and every job seen so far has ended (polled, to record when the
    finished ones did).

    The queue's two counts alone are not enough: a job that a worker has taken off the queue but not yet entered in
    RQ's started registry is in neither (seen once: a job still "started" after both read 0)."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        def poll_pending():
            for job_id in [job_id for job_id, job in traffic.jobs.items() if job["finished"] is None]:
                response = session.get(f"{base}/api/jobs/{job_id}", timeout=30)
                if response.ok:
                    traffic.saw_job(response.json())
            return [job_id for job_id, job in traffic.jobs.items()
                    if job["finished"] is None and job.get("status") not in ("failed", "canceled")]

        while time.monotonic() < deadline:
            poll_pending()
            queue = health(base)["queue"]
            # A job may have ended between its poll above and this look at the queue, or be on its way from the
            # queue to the started registry: polled once more, and every one must have ended.
            if queue["length"] == 0 and queue.get("started", 0) == 0 and not poll_pending():
                return True, queue
            time.sleep(0.25)
    return False, health(base)["queue"]


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def summarise(traffic, seconds, drained, queue, workers, memory):
    statuses = Counter(str(status) for _, status, _ in traffic.samples)
    kinds = defaultdict(list)
    for kind, status, elapsed in traffic.samples:
        kinds[kind].append((status, elapsed))
    latency = {kind: {"count": len(rows),
                      "p50_ms": round(1000 * percentile([e for _, e in rows], 0.50), 1),
                      "p99_ms": round(1000 * percentile([e for _, e in rows], 0.99), 1),
                      "max_ms": round(1000 * max(e for _, e in rows), 1),
                      "statuses": dict(Counter(str(s) for s, _ in rows))}
               for kind, rows in sorted(kinds.items())}
    api = [elapsed for kind, _, elapsed in traffic.samples if kind != "health"]
    new_jobs = [job for job in traffic.jobs.values() if job["new"]]
    finished_new = [job for job in new_jobs if job["finished"] is not None]
    jobs_per_minute_per_worker = None
    if finished_new and workers:
        span = max(job["finished"] for job in finished_new) - min(job["submitted"] for job in new_jobs)
        jobs_per_minute_per_worker = round(len(finished_new) / (span / 60) / workers, 2) if span > 0 else None
    job_seconds = sorted(job["job_seconds"] for job in finished_new if job["job_seconds"])
    bad = {status: count for status, count in statuses.items()
           if not status.isdigit() or (int(status) >= 500 and status != "503")}
    return {
        "requests": len(traffic.samples), "seconds": round(seconds, 2),
        "requests_per_second": round(len(traffic.samples) / seconds, 1) if seconds else None,
        "api_p50_ms": round(1000 * percentile(api, 0.50), 1) if api else None,
        "api_p99_ms": round(1000 * percentile(api, 0.99), 1) if api else None,
        "statuses": dict(sorted(statuses.items())), "latency": latency,
        "jobs": {"seen": len(traffic.jobs), "new": len(new_jobs), "new_finished": len(finished_new),
                 "workers": workers, "per_minute_per_worker": jobs_per_minute_per_worker,
                 "median_job_seconds": percentile(job_seconds, 0.5),
                 "new_unfinished": [{"id": job_id, "status": job.get("status"), "message": job.get("message")}
                                    for job_id, job in traffic.jobs.items() if job["new"] and job["finished"] is None]},
        "drained": drained, "queue_after_drain": queue, "started_registry_after_drain": queue.get("started"),
        "memory": memory,
        "unexpected_statuses": bad, "rate_limited": statuses.get("429", 0),
        "ok": not bad and drained and queue.get("started") == 0,
    }


def run_load(base, args):
    photos = [Path(path) for path in args.photos] or sorted(EXAMPLES.glob("*.jpg"))
    port = int(base.rsplit(":", 1)[1].split("/")[0])
    load_before = os.getloadavg()[0]
    before = health(base)
    master = gunicorn_master(port)
    workers = before["workers"]["alive"]
    primed = prime(base, photos[0], args.drain_timeout)
    memory = MemorySampler({"web": lambda: web_processes(master), "worker": lambda: worker_processes(health(base))})
    option_sets = OPTION_SETS[:args.option_sets]
    traffic = Traffic(base, photos, option_sets, args.requests, args.time_limit, args.warmup, args.seed, args.think)
    traffic.saw_job(primed)
    traffic.started_at = time.monotonic()
    memory.begin()
    threading.Thread(target=lambda: traffic.warmed_up.wait() and memory.mark("after_warmup"), daemon=True).start()
    threading.Thread(target=lambda: traffic.halfway.wait() and memory.mark("halfway"), daemon=True).start()
    threads = [threading.Thread(target=client_thread, args=(traffic,)) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - traffic.started_at
    drained, queue = drain(base, traffic, args.drain_timeout)
    report = summarise(traffic, seconds, drained, queue, workers, memory.finish())
    report["settings"] = {"base": base, "requests": args.requests, "time_limit": args.time_limit,
                          "concurrency": args.concurrency, "think": args.think, "warmup": args.warmup, "mix": MIX,
                          "photos": [path.name for path in photos], "option_sets": option_sets,
                          "cpu_count": os.cpu_count(), "load_average_before": round(load_before, 2),
                          "load_average_after": round(os.getloadavg()[0], 2)}
    return report


@contextmanager
def own_service(workers, web_workers):
    """Embedded Redis, ``workers`` workers and gunicorn in a temporary instance; rate limits off. The
    instance is removed afterwards unless something failed (its service.log then tells why)."""
    from service import embedded_redis
    from service.serve import stop_process

    instance = Path(tempfile.mkdtemp(prefix="visnet-load-"))
    redis_url = embedded_redis.ensure_server(instance)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "REDIS_URL": redis_url, "VISNET_INSTANCE_DIR": str(instance), "VISNET_WEIGHTS": "hed",
           "VISNET_BIND": f"127.0.0.1:{port}", "VISNET_WEB_WORKERS": str(web_workers),
           "VISNET_RATE_LIMIT_SUBMIT": "0", "VISNET_RATE_LIMIT_READ": "0", "VISNET_LOG_LEVEL": "WARNING",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    base = f"http://127.0.0.1:{port}"
    log = open(instance / "service.log", "wb")
    processes = [subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT) for _ in range(workers)]
    processes.append(subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")],
                                      cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    succeeded = False
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if health(base)["workers"]["alive"] >= workers:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                raise RuntimeError("the service did not start; see " + str(instance / "service.log"))
            time.sleep(0.5)
        yield base
        succeeded = True
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=30)
        log.close()
        embedded_redis.stop_server(instance)
        if succeeded:
            shutil.rmtree(instance, ignore_errors=True)
        else:
            print(f"the service's instance folder is kept: {instance}", file=sys.stderr)


def print_report(report):
    print(f"{report['requests']} requests in {report['seconds']} s: {report['requests_per_second']} requests/s; "
          f"API p50 {report['api_p50_ms']} ms, p99 {report['api_p99_ms']} ms (load average "
          f"{report['settings']['load_average_before']} before, {report['settings']['load_average_after']} after)")
    print(f"{'kind':8} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for kind, row in report["latency"].items():
        print(f"{kind:8} {row['count']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}  {row['statuses']}")
    jobs = report["jobs"]
    print(f"jobs: {jobs['seen']} seen, {jobs['new']} new, {jobs['new_finished']} of them finished; "
          f"{jobs['per_minute_per_worker']} jobs per minute per worker ({jobs['workers']} workers; "
          f"a job's own time, median: {jobs['median_job_seconds']} s)")
    print(f"queue drained: {report['drained']}; started registry after: {report['started_registry_after_drain']}")
    for group, figures in report["memory"].items():
        for key in ("largest", "total"):
            row = figures[key]
            print(f"RSS {group:6} {key:7} start {row['start_mib']:>7} MiB  warm {row['after_warmup_mib']:>7}  "
                  f"halfway {row['halfway_mib']:>7}  peak {row['peak_mib']:>7}  end {row['end_mib']:>7}  "
                  f"growth after warm-up {row['growth_after_warmup_mib']}")
        print(f"    {figures['processes_seen']} {group} processes seen")
    if report["rate_limited"]:
        print(f"warning: {report['rate_limited']} requests were rate limited (429); raise VISNET_RATE_LIMIT_*")
    if report["unexpected_statuses"]:
        print(f"FAILED: unexpected answers {report['unexpected_statuses']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base", help="a running service, e.g. http://127.0.0.1:8000")
    where.add_argument("--start", action="store_true", help="start an own Redis, workers and gunicorn")
    parser.add_argument("--workers", type=int, default=1, help="with --start: RQ workers (default 1)")
    parser.add_argument("--web-workers", type=int, default=2, help="with --start: gunicorn processes (default 2)")
    parser.add_argument("--requests", type=int, default=1000, help="requests to send (default 1000)")
    parser.add_argument("--time-limit", type=float, default=120, help="seconds to send them in (default 120)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--think", type=float, default=0.0, help="seconds each thread waits between requests")
    parser.add_argument("--warmup", type=int, default=50, help="requests before the 'warm' memory reading")
    parser.add_argument("--drain-timeout", type=float, default=600, help="seconds to wait for the queue")
    parser.add_argument("--photos", nargs="*", default=[], help="JPEG files to upload (default: static/examples)")
    parser.add_argument("--option-sets", type=int, default=len(OPTION_SETS),
                        help=f"how many of the {len(OPTION_SETS)} option sets uploads use (default all): "
                             "photos × option sets is the number of distinct jobs")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "workers", "web_workers", "option_sets"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    if args.start:
        with own_service(args.workers, args.web_workers) as base:
            report = run_load(base, args)
    else:
        report = run_load(args.base.rstrip("/"), args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
