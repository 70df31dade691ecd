"""``python -m visnet.scan``: scan a folder (or a ZIP) of images in this process.

    python -m visnet.scan photos/ --layers pools --k 9 --skip-grey           # in this process
    python -m visnet.scan --resume instance/results/scans/<id>               # finish a stopped scan
    python -m visnet.scan --status instance/results/scans/<id>
    python -m service.scans photos/ --layers block3_pool,block5_pool          # RQ jobs on the workers

``--enqueue`` hands the same arguments to ``python -m service.scans`` (this package knows no queues).

The scan folder is ``<--out>/scans/<scan id>`` (``--out`` defaults to RESULTS_DIR). Without
``--enqueue`` no Redis is needed. Defaults for the weights, device, queue and Redis come from
:mod:`visnet.settings`.

Exit status: 0 on success; 2 for a bad request (options, folder, archive); 1 when the scan fails.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ..numbers import non_negative_argument
from ..settings import from_environment
from . import store
from .imagesets import UnsafeArchive, extract_zip
from .layout import layout_of, model_layout
from .plan import ScanOptions, create_scan

USAGE_ERROR = 2
FAILURE = 1


def build_parser(prog: str = "python -m visnet.scan") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="a folder of images, or a .zip of them")
    parser.add_argument("--layers", default="pools", help="'pools' (default), 'all' or NAME,NAME,… (fc1, fc2 and "
                                                          "predictions too, with the classifier top)")
    parser.add_argument("--k", type=non_negative_argument, default=9, help="top and bottom images kept per channel (default 9)")
    parser.add_argument("--skip-grey", action="store_true", help="leave greyscale images out (as the source did)")
    parser.add_argument("--size", type=non_negative_argument, default=None,
                        help="resize images to SIZE × SIZE, then take the central input size of the model (224 × 224 "
                             "for vgg16; default: the input size)")
    parser.add_argument("--chunk-size", type=non_negative_argument, default=32, help="images per chunk job (default 32)")
    parser.add_argument("--project-channels", type=non_negative_argument, default=None, metavar="N",
                        help="project the N units of each layer with the highest top activation (default all; "
                             "0: none)")
    parser.add_argument("--project-k", type=non_negative_argument, default=None, metavar="K",
                        help="project each channel's K top images (default: all k)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default RESULTS_DIR)")
    parser.add_argument("--scan-id", default=None, help="32 hexadecimal characters (default: a new id)")
    parser.add_argument("--enqueue", action="store_true",
                        help="run on the workers instead (RQ jobs on REDIS_URL): the same as python -m service.scans")
    parser.add_argument("--resume", type=Path, metavar="SCAN_DIR", help="finish (or re-enqueue) an existing scan")
    parser.add_argument("--status", type=Path, metavar="SCAN_DIR", help="print a scan's progress as JSON")
    parser.add_argument("--model", default=None, help="vgg16, or a model stored with python -m visnet models add "
                                                       "(default VISNET_MODEL); a resumed scan keeps its own")
    parser.add_argument("--weights", default=None, help="vgg16's weights name or path (default VISNET_WEIGHTS)")
    parser.add_argument("--device", default=None, help="device policy (default VISNET_DEVICE)")
    return parser


def plan_scan(args, settings) -> Path:
    if args.source is None:
        raise ValueError("give a folder or a .zip of images, or --resume/--status SCAN_DIR")
    options = ScanOptions(layers=args.layers, k=args.k, skip_grey=args.skip_grey, image_size=args.size,
                          chunk_size=args.chunk_size, project_channels=args.project_channels,
                          project_k=args.project_k, layout=model_layout(settings.models_dir, args.model or settings.model))
    scan_id = args.scan_id or store.new_scan_id()
    scan_dir = store.scan_path((args.out or settings.results_dir) / "scans", scan_id)
    source = args.source
    if source.is_file() and source.suffix.lower() == ".zip":
        extracted = extract_zip(source, scan_dir / store.IMAGES_DIR)
        print(f"extracted {len(extracted.images)} images ({len(extracted.skipped)} other members skipped)")
        source = scan_dir / store.IMAGES_DIR
    elif not source.is_dir():
        raise ValueError(f"{str(source)!r} is neither a folder nor a .zip file")
    started = time.perf_counter()
    record = create_scan(scan_dir, source, options, scan_id=scan_id, max_image_pixels=settings.max_image_pixels)
    print(f"scan {record['id']}: {len(record['images'])} images in {len(record['chunks'])} chunks, "
          f"{len(record['skipped'])} skipped, read in {time.perf_counter() - started:.1f} s")
    print(f"folder: {scan_dir}")
    return scan_dir


def scan_model(scan_dir) -> str:
    """The model a planned scan runs on."""
    return layout_of(store.load_scan(scan_dir)).name


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.enqueue:
        return subprocess.call([sys.executable, "-m", "service.scans", *[a for a in argv if a != "--enqueue"]])
    settings = from_environment()
    try:
        if args.status is not None:
            from .progress import scan_progress

            print(json.dumps(scan_progress(args.status), indent=2))
            return 0
        scan_dir = args.resume if args.resume is not None else plan_scan(args, settings)
    except (ValueError, UnsafeArchive, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR

    from ..engine import load_model_engine
    from .runner import run_scan

    engine = load_model_engine(scan_model(scan_dir), settings, args.weights, args.device)
    started = time.perf_counter()
    result = run_scan(scan_dir, engine, report=print)
    from .progress import scan_progress

    progress = scan_progress(scan_dir)
    print(f"done in {time.perf_counter() - started:.1f} s: {result['chunks_computed']} chunks, "
          f"{result['projection_blocks_computed']} projection blocks; "
          f"{progress['images_per_second'] or 0:.2f} images/s over the forward scan")
    print(f"folder: {scan_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
