"""Measures the service's README figures on this machine:

* worker-ready time: from starting ``worker.py`` to the worker taking jobs (Python and TensorFlow
  import, weights read, graph and both preset sweeps built), and the engine's own share of it;
* for the default job (five pooling layers, top 3: 15 reconstructions) on a warm worker, through
  gunicorn and RQ, by an API client that polls the job as the job page does (a long poll: since the
  revision it has, wait 10 s; the page's schedule when one comes back unchanged) and fetches every PNG the
  job's ``files`` list as soon as it is listed: the compute (the worker's own timing of the engine call),
  the time queued (enqueue to worker pickup), upload to "finished", upload to every PNG fetched, and
  the overhead (that last time less the compute) against issue 14's target, compute + 0.3 s, and the same
  target as a ratio (``TARGET_RATIO``); with where the overhead goes, in time and in CPU: every process here
  (worker, gunicorn, Redis, this client) shares the machine's cores, so any CPU one spends is the user's wait;
* the same job in headless Chromium: from clicking "Visualise" to every image of the sheet loaded.

Everything runs in a temporary instance folder with its own embedded Redis, worker and gunicorn.

    .venv/bin/python scripts/measure_service.py [--runs 5]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import redis
import requests
from PIL import Image, ImageOps

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from rq.job import Job  # noqa: E402

from service import embedded_redis, presence  # noqa: E402
from service.serve import stop_process  # noqa: E402

EXAMPLES = PROJECT_ROOT / "static" / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ALL_IMAGES_LOADED = ("() => Array.from(document.querySelectorAll('#sheet img'))"
                     ".every((image) => image.complete && image.naturalWidth > 0)")


def photos(count):
    """Distinct JPEG files (examples, mirrored and slightly cropped) so no run reuses another's result."""
    folder = Path(tempfile.mkdtemp(prefix="visnet-measure-"))
    paths = []
    sources = sorted(EXAMPLES.glob("*.jpg"))
    for index in range(count):
        with Image.open(sources[index % len(sources)]) as image:
            image = image.convert("RGB")
            if (index // len(sources)) % 2:
                image = ImageOps.mirror(image)
            image = image.crop((index, 0, image.width, image.height))
            path = folder / f"photo{index}.jpg"
            image.save(path, "JPEG", quality=90)
            paths.append(path)
    return paths


def cpu_model():
    """The CPU's model name (as ``lscpu`` says it), for the README's figures."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


# Issue 14's target: upload to every PNG fetched within the compute time plus this much.
TARGET_OVERHEAD_SECONDS = 0.3
# The same target as a ratio, as issue 14 asks its targets to be stated ("so they hold on any machine"): on the
# machine it was set on, the default job's compute took 0.9 s, so compute + 0.3 s was 1.2 / 0.9 × compute. The
# overhead is CPU work (drawing, encoding, serving the PNGs), which scales with the machine as the compute does.
ISSUE_COMPUTE_SECONDS = 0.9
TARGET_RATIO = (ISSUE_COMPUTE_SECONDS + TARGET_OVERHEAD_SECONDS) / ISSUE_COMPUTE_SECONDS


# The wait of the page's long polls (static/status.js, LONG_POLL_SECONDS; the server's bound).
LONG_POLL_SECONDS = 10
# Connections a browser opens to one host to load a page's images (Chromium's limit for HTTP/1.1).
IMAGE_CONNECTIONS = 6


def cpu_seconds(pid):
    """CPU seconds (user and system) that process ``pid`` and its descendants have used: the live ones', and the
    children's that have ended and been waited for (in their parent's counters)."""
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class CpuMeter:
    """CPU seconds spent by each process of the service (``pids``: name → pid) and by this client, between
    :meth:`start` and :meth:`stop`."""

    def __init__(self, pids):
        self.pids = dict(pids)

    def _now(self):
        return {"client": time.process_time(), **{name: cpu_seconds(pid) for name, pid in self.pids.items()}}

    def start(self):
        self._started = self._now()

    def stop(self):
        ended = self._now()
        return {name: ended[name] - self._started[name] for name in ended}


def poll_delay(document, elapsed):
    """Seconds until the next poll of ``document`` when it came back unchanged, ``elapsed`` seconds after the
    upload: the job page's schedule (static/job.js, pollDelay), so the API figures poll as a user's page does."""
    stages = (document["progress"] or {}).get("stages") or []
    if len(stages) > 1 and all(stage["done"] >= stage["total"] for stage in stages[:-1]):
        return 0.1  # writing: the job ends soon
    return min(1.0, max(0.1, 0.1 * elapsed))


def via_api(base, path, connection, meter=None):
    """One job through the API as the page sees it: POST, poll, fetch each PNG as soon as ``files`` lists
    it (a running job lists those already written), until the job is finished and every PNG is fetched.
    The PNGs are fetched beside the polls, on ``IMAGE_CONNECTIONS`` connections, as a browser loads a page's
    images while its script goes on polling. Seconds from the upload's start: ``finished`` (the poll that saw
    it), ``fetched`` (every PNG); and the RQ job's own ``queued`` (enqueue to pickup), ``picked_up`` and
    ``ended`` (the worker's clock, this machine's), and the job's ``timings``; with a :class:`CpuMeter`,
    ``cpu``: each process's CPU seconds from the upload to the last PNG, and ``requests``: how many were sent."""
    if meter is not None:
        meter.start()
    started, wall_started = time.perf_counter(), time.time()
    with open(path, "rb") as file:
        response = requests.post(f"{base}/api/jobs", files={"image": (path.name, file, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    url = base + response.json()["links"]["self"]
    fetched, finished, revision, polls = set(), None, None, 0
    connections = threading.local()

    def fetch(file_url):
        if not hasattr(connections, "session"):
            connections.session = requests.Session()
        connections.session.get(file_url, timeout=30).raise_for_status()

    with requests.Session() as session, ThreadPoolExecutor(IMAGE_CONNECTIONS) as images:
        loading = []
        while True:  # as static/status.js pollJson with longPoll: since and wait once it has a revision
            sent = time.perf_counter()
            wait = {"since": revision, "wait": LONG_POLL_SECONDS} if revision else None
            document = session.get(url, params=wait, timeout=LONG_POLL_SECONDS + 30).json()
            polls += 1
            assert document["status"] not in ("failed", "canceled"), document
            changed, revision = document["revision"] != revision, document["revision"]
            if document["status"] == "finished" and finished is None:
                finished = time.perf_counter() - started
            for entry in document["files"]:
                if entry["name"] not in fetched:
                    loading.append(images.submit(fetch, base + entry["url"]))
                    fetched.add(entry["name"])
            if finished is not None:
                break
            if not changed:  # the wait ran out, or the server had no thread for it: the page's schedule
                delay = poll_delay(document, time.perf_counter() - started)
                time.sleep(max(0.0, delay - (time.perf_counter() - sent)))
        for future in loading:
            future.result()
    total = time.perf_counter() - started
    cpu = meter.stop() if meter is not None else None
    job = Job.fetch(document["id"], connection=connection)
    return {
        "fetched": total, "finished": finished, "files": len(fetched), "timings": document["timings"],
        "cpu": cpu, "requests": 1 + polls + len(fetched),
        "queued": (job.started_at - job.enqueued_at).total_seconds(),
        "picked_up": job.started_at.timestamp() - wall_started, "ended": job.ended_at.timestamp() - wall_started,
    }


def via_browser(page, base, path):
    """Seconds from clicking "Visualise" to every image of the sheet loaded, and the job's timings."""
    page.goto(base + "/")
    page.set_input_files("#image", str(path))
    started = time.perf_counter()
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job[data-status=finished]", timeout=300_000)
    page.wait_for_selector("#sheet .layer-row", timeout=60_000)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=60_000, polling=20)
    elapsed = time.perf_counter() - started
    assert page.locator("#sheet .feature").count() == 15
    document = requests.get(base + page.locator("#job").get_attribute("data-api"), timeout=30).json()
    return elapsed, document["timings"]


def median(values, digits=2):
    return round(statistics.median(values), digits)


def api_figures(runs):
    """The API runs' medians: what the user waits for, the compute inside it and where the rest goes."""
    compute = [run["timings"]["network_seconds"] for run in runs]
    fetched = [run["fetched"] for run in runs]
    overheads = [total - seconds for total, seconds in zip(fetched, compute)]
    ratios = [total / seconds for total, seconds in zip(fetched, compute)]
    return {
        "compute_seconds": median(compute),
        "queued_seconds": median([run["queued"] for run in runs], 3),
        "finished_seconds": median([run["finished"] for run in runs]),
        "fetched_seconds": median(fetched),
        "fetched_seconds_all": [round(value, 2) for value in fetched],
        "overhead_seconds": median(overheads),
        "meets_target": sum(overhead <= TARGET_OVERHEAD_SECONDS for overhead in overheads),
        "fetched_over_compute": median(ratios, 3),
        "meets_target_ratio": sum(ratio <= TARGET_RATIO for ratio in ratios),
        # Where the overhead goes, in order: upload and enqueue, then pickup; the job's own work
        # around the engine (reading the photo, writing); RQ's bookkeeping after the job; the poll
        # that sees "finished"; the PNGs still to fetch after it.
        "breakdown_seconds": {
            "upload_to_pickup": median([run["picked_up"] for run in runs], 3),
            "job_outside_engine": median([run["timings"]["total_seconds"] - run["timings"]["network_seconds"]
                                          for run in runs], 3),
            "write": median([run["timings"]["write_seconds"] for run in runs], 3),
            "rq_around_job": median([run["ended"] - run["picked_up"] - run["timings"]["total_seconds"]
                                     for run in runs], 3),
            "end_to_finished_seen": median([run["finished"] - run["ended"] for run in runs], 3),
            "finished_seen_to_fetched": median([run["fetched"] - run["finished"] for run in runs], 3),
        },
        "files": runs[0]["files"],
        "requests": median([run["requests"] for run in runs], 0),
        # CPU seconds per job from the upload to the last PNG, by process: all of it on the same cores.
        "cpu_seconds": ({name: median([run["cpu"][name] for run in runs], 3) for name in runs[0]["cpu"]}
                        if runs[0]["cpu"] else None),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="warm jobs per method (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    load_at_start = round(os.getloadavg()[0], 2)
    instance = Path(tempfile.mkdtemp(prefix="visnet-measure-instance-"))
    redis_url = embedded_redis.ensure_server(instance)
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "VISNET_INSTANCE_DIR": str(instance), "VISNET_WEIGHTS": "hed",
           "VISNET_BIND": f"127.0.0.1:{port}", "TF_CPP_MIN_LOG_LEVEL": "2", "VISNET_LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{port}"
    connection = redis.Redis.from_url(redis_url)
    processes = []
    try:
        started = time.perf_counter()
        worker = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT, env=env)
        processes.append(worker)
        name = f"visnet-{socket.gethostname()}-{worker.pid}"
        wait_until(lambda: presence.is_alive(connection, name), 600, "worker ready")
        worker_ready = time.perf_counter() - started
        model = presence.published_model(connection)
        engine_load, engine_ready, device = model["load_seconds"], model["ready_seconds"], model["device"]

        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(web)

        def web_up():
            try:
                return requests.get(base + "/api/health", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(web_up, 60, "gunicorn up")

        files = photos(2 * args.runs + 1)
        first = via_api(base, files[0], connection)  # the first user job after start-up
        meter = CpuMeter({"worker": worker.pid, "web": web.pid, "redis": connection.info("server")["process_id"]})
        api_runs = [via_api(base, path, connection, meter) for path in files[1:args.runs + 1]]
        browser_runs = []
        if Path(CHROMIUM).exists():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                browser_runs = [via_browser(page, base, path) for path in files[args.runs + 1:]]
                browser.close()

        figures = {
            "cpu_count": os.cpu_count(),
            "cpu": cpu_model(),
            "load_average_at_start": load_at_start,
            "device": device,
            "worker_ready_seconds": round(worker_ready, 2),
            "engine_load_seconds": round(engine_load, 2),
            "engine_ready_seconds": round(engine_ready, 2),
            "first_job_fetched_seconds": round(first["fetched"], 2),
            "api": api_figures(api_runs),
            "browser_seconds_median": median([t for t, _ in browser_runs]) if browser_runs else None,
            "browser_seconds_all": [round(t, 2) for t, _ in browser_runs],
            "browser_compute_seconds_median": (median([t["network_seconds"] for _, t in browser_runs])
                                               if browser_runs else None),
            "runs": args.runs,
        }
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=30)
        embedded_redis.stop_server(instance)

    print(json.dumps(figures, indent=2))
    api = figures["api"]
    print(f"\nOn {figures['cpu']} ({figures['cpu_count']} cores, {figures['device']}, load average "
          f"{figures['load_average_at_start']} at the start), hed weights, medians of {args.runs} warm jobs:")
    print(f"- worker ready: {figures['worker_ready_seconds']} s from start (imports, weights and graph "
          f"{figures['engine_load_seconds']} s, then a warm-up pass: {figures['engine_ready_seconds']} s in all)")
    print(f"- the default job ({api['files']} PNGs, 15 reconstructions), API client polling as the page does: "
          f"compute {api['compute_seconds']} s, queued {api['queued_seconds']} s, upload to finished "
          f"{api['finished_seconds']} s, upload to every PNG fetched {api['fetched_seconds']} s")
    print(f"- overhead (every PNG fetched less compute): {api['overhead_seconds']} s = "
          f"{api['fetched_seconds'] / api['compute_seconds']:.2f}x compute; target <= compute + "
          f"{TARGET_OVERHEAD_SECONDS} s: {'met' if api['overhead_seconds'] <= TARGET_OVERHEAD_SECONDS else 'NOT met'} "
          f"(median; {api['meets_target']} of {args.runs} runs within it)")
    ratio_met = api["fetched_over_compute"] <= TARGET_RATIO
    print(f"- as a ratio: every PNG fetched = {api['fetched_over_compute']:.2f} x compute; target <= "
          f"{TARGET_RATIO:.2f} x (compute + {TARGET_OVERHEAD_SECONDS} s where compute was {ISSUE_COMPUTE_SECONDS} s, "
          f"issue 14's machine): {'met' if ratio_met else 'NOT met'} (median; {api['meets_target_ratio']} of "
          f"{args.runs} runs within it)")
    print("- where it goes: " + ", ".join(f"{key.replace('_', ' ')} {value} s"
                                          for key, value in api["breakdown_seconds"].items()))
    cpu = api["cpu_seconds"]
    print(f"- CPU per job, upload to the last PNG, on the {figures['cpu_count']} cores all of it shares: "
          + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in cpu.items())
          + f" (the worker's includes the compute; {api['requests']} requests: the upload, the polls and "
          f"{api['files']} PNGs)")
    print(f"- first job after start: every PNG fetched in {figures['first_job_fetched_seconds']} s")
    if browser_runs:
        print(f"- browser, from clicking Visualise to every image of the sheet loaded: median "
              f"{figures['browser_seconds_median']} s (compute {figures['browser_compute_seconds_median']} s) over "
              f"{len(browser_runs)} photos")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
