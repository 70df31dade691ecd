"""Measures the service's README figures on this machine:

* worker-ready time: from starting ``worker.py`` to the worker taking jobs (Python and TensorFlow
  import, weights read, graph and both preset sweeps built), and the engine's own share of it;
* upload to full result sheet on a warm worker for the default job (five pooling layers, top 3: 15
  reconstructions): in headless Chromium, from clicking "Visualise" to every image of the sheet
  loaded; and, through the API alone, from POST to "finished".

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
import time
from pathlib import Path

import redis
import requests
from PIL import Image, ImageOps

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from app import presence  # noqa: E402
from service import embedded_redis
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


def via_api(base, path):
    started = time.perf_counter()
    with open(path, "rb") as file:
        response = requests.post(f"{base}/api/jobs", files={"image": (path.name, file, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    url = base + response.json()["links"]["self"]
    while True:
        document = requests.get(url, timeout=30).json()
        if document["status"] in ("finished", "failed"):
            break
        time.sleep(0.1)
    assert document["status"] == "finished", document
    for entry in document["files"]:
        requests.get(base + entry["url"], timeout=30).raise_for_status()
    return time.perf_counter() - started, document["timings"]


def via_browser(page, base, path):
    page.goto(base + "/")
    page.set_input_files("#image", str(path))
    started = time.perf_counter()
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#sheet .layer-row", timeout=300_000)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=60_000, polling=20)
    elapsed = time.perf_counter() - started
    assert page.locator("#sheet .feature").count() == 15
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="warm jobs per method (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

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
        first_seconds, _ = via_api(base, files[0])  # the first user job after start-up
        api_runs = [via_api(base, path) for path in files[1:args.runs + 1]]
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
            "device": device,
            "worker_ready_seconds": round(worker_ready, 2),
            "engine_load_seconds": round(engine_load, 2),
            "engine_ready_seconds": round(engine_ready, 2),
            "first_job_api_seconds": round(first_seconds, 2),
            "warm_api_seconds_median": round(statistics.median(t for t, _ in api_runs), 2),
            "warm_network_seconds_median": round(statistics.median(t["network_seconds"] for _, t in api_runs), 2),
            "warm_write_seconds_median": round(statistics.median(t["write_seconds"] for _, t in api_runs), 2),
            "warm_browser_seconds_median": round(statistics.median(browser_runs), 2) if browser_runs else None,
            "warm_browser_seconds_all": [round(t, 2) for t in browser_runs],
            "runs": args.runs,
        }
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=30)
        embedded_redis.stop_server(instance)

    print(json.dumps(figures, indent=2))
    print(f"\nOn {figures['cpu_count']} CPU cores ({figures['device']}), hed weights:")
    print(f"- worker ready: {figures['worker_ready_seconds']} s from start (imports, weights and graph "
          f"{figures['engine_load_seconds']} s, then a warm-up pass: {figures['engine_ready_seconds']} s in all)")
    if browser_runs:
        print(f"- upload to full result sheet (15 reconstructions, browser, warm worker): "
              f"median {figures['warm_browser_seconds_median']} s over {len(browser_runs)} photos")
    print(f"- POST to finished with every PNG fetched (API, warm): median {figures['warm_api_seconds_median']} s "
          f"(network {figures['warm_network_seconds_median']} s, PNGs {figures['warm_write_seconds_median']} s); "
          f"first job after start {figures['first_job_api_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
