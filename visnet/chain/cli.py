"""``python -m visnet models add FILE --name NAME | list | remove NAME``: the chain models of the models
folder. Adding is an operator's act: the file is checked (a chain of supported layers, loaded in Keras'
safe mode), converted, compared with Keras' own output, and stored as data; on refusal nothing is stored.
Keras and TensorFlow are imported by ``add`` only."""
import json
import sys
from pathlib import Path

from ..settings import from_environment
from .keras_config import ChainRefused
from .preprocess import PREPROCESSING
from .store import remove_chain, save_chain, stored_models

REFUSED = 2  # the CLI's status for a bad request (visnet.cli.USAGE_ERROR)


def add_models_parser(commands, parser_class) -> None:
    """The ``models`` command and its actions, on the CLI's subparsers ``commands``."""
    models = commands.add_parser("models", help="add, list or remove your own chain models (Keras files)")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True
    add = actions.add_parser("add", help="check a Keras model file, convert it and store it in the models folder")
    add.add_argument("file", metavar="FILE", type=Path, help="a .keras file (or an .h5 saved by model.save)")
    add.add_argument("--name", required=True, help="the model's name: lower-case letters, digits, '-' and '_'")
    add.add_argument("--preprocess", choices=tuple(PREPROCESSING), default=None,
                     help="how a photo becomes the model's input: " +
                          "; ".join(f"{key}: {words}" for key, words in PREPROCESSING.items()) +
                          " (default: none when the model starts with its own Rescaling or Normalization)")
    add.add_argument("--classes", type=Path, default=None, metavar="FILE",
                     help="class names of the final softmax's outputs: a JSON list, or one name per line")
    add.set_defaults(handler=models_add_command)
    listing = actions.add_parser("list", help="the stored models")
    listing.set_defaults(handler=models_list_command)
    remove = actions.add_parser("remove", help="delete a stored model")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=models_remove_command)


def read_classes(path: Path) -> list:
    """Class names from a JSON list of strings, or from a text file with one name per line."""
    try:
        text = path.read_text(encoding="utf8")
    except (OSError, UnicodeDecodeError) as error:
        raise ChainRefused(f"cannot read the classes file {path}: {error}") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as error:
            raise ChainRefused(f"{path}: not a valid JSON list ({error})") from None
        if not all(isinstance(name, str) for name in names):
            raise ChainRefused(f"{path}: expected a JSON list of strings")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


def models_add_command(args, engine=None) -> int:
    from .convert import convert_model_file
    from .store import check_name, model_folder

    settings = from_environment()
    try:
        check_name(args.name)
        if model_folder(settings.models_dir, args.name).exists():
            raise ChainRefused(f"a model named {args.name!r} exists already; remove it first: "
                               f"python -m visnet models remove {args.name}")
        classes = read_classes(args.classes) if args.classes is not None else None
        chain = convert_model_file(args.file, args.name, args.preprocess, classes)
        folder = save_chain(chain, settings.models_dir)
    except ChainRefused as error:
        print(f"refused: {error}", file=sys.stderr)
        return REFUSED
    height, width, channels = chain.input_shape
    print(f"{chain.name}: stored in {folder}: {len(chain.layer_names)} layers ({', '.join(chain.layer_names)}), "
          f"input {height}×{width}×{channels}, preprocessing {chain.preprocess}, "
          f"{len(chain.classes) if chain.classes else 'no'} class names; matches Keras' output to "
          f"{chain.source['keras_difference']:.1g} of its largest value")
    return 0


def models_list_command(args, engine=None) -> int:
    rows = stored_models(from_environment().models_dir)
    print("vgg16  built in: input 224×224×3  preprocess caffe  its weights: python -m visnet weights list")
    if not rows:
        print("no models added; add one with: python -m visnet models add FILE --name NAME")
    for row in rows:
        print(f"{row['name']}  input {'×'.join(str(side) for side in row['input_shape'])}  "
              f"preprocess {row['preprocess']}  {len(row['layers'])} layers  classes {row['classes'] or 'none'}  "
              f"from {row['source'].get('file', '?')} (sha256 {row['source'].get('sha256', '?')[:12]})")
    return 0


def models_remove_command(args, engine=None) -> int:
    try:
        folder = remove_chain(from_environment().models_dir, args.name)
    except ChainRefused as error:
        print(f"refused: {error}", file=sys.stderr)
        return REFUSED
    print(f"{args.name}: removed {folder}")
    return 0
