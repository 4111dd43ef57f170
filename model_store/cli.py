"""``python -m model_store`` (``microexp-store``): list, inspect, publish, promote, roll back and verify models.

A command naming a size acts on the model the service answers that size with (``MICROEXP_FAMILY``'s family if set,
else the store's decision for the size, ``default``) unless ``--family`` names another. Publishing a training
checkpoint is the trainer's command (``python -m trainer publish``), which exports it and then calls
``publish_file`` here.

Errors a user can cause (unknown size or version, a path that is not a store, a bad draft) end with exit status 2
and one line on stderr; ``verify`` exits 1 when it finds problems.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from model_store.metadata import ModelDraft, draft_from_json, validation_summary
from model_store.store import IntegrityError, ModelStore, StoreError, first_line
from model_store.vocabulary import model_name

# The same variables the service reads.
STORE_ENV = "MICROEXP_STORE"
FAMILY_ENV = "MICROEXP_FAMILY"
_DEFAULT_STORE = "models"


class UsageError(Exception):
    """A problem with what the user asked for, reported in one line."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (StoreError, UsageError, OSError) as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microexp-store", description="Manage a versioned ONNX model store.")
    store_help = f"store directory (default: ${STORE_ENV}, else ./{_DEFAULT_STORE})"
    parser.add_argument("--store", type=Path, default=Path(os.environ.get(STORE_ENV, _DEFAULT_STORE)), help=store_help)
    # Also accepted after the command; SUPPRESS keeps the value given before it when it is not repeated.
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", type=Path, default=argparse.SUPPRESS, help=store_help)
    family = argparse.ArgumentParser(add_help=False)
    family.add_argument(
        "--family",
        default=os.environ.get(FAMILY_ENV),
        help=f"model family (default: ${FAMILY_ENV}, else the family the service answers the size with)",
    )
    promote = argparse.ArgumentParser(add_help=False)
    promote.add_argument("--promote", action="store_true", help="serve the new version by default")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, parents=[store, *parents])
        sub.set_defaults(command=handler)
        return sub

    command("list", _list, "list models and versions")
    show = command("show", _show, "print a version's metadata (default: the served version)", family)
    show.add_argument("size", metavar="SIZE")
    show.add_argument("version", metavar="VERSION", type=int, nargs="?")
    publish_onnx = command("publish-onnx", _publish_onnx, "publish an ONNX model exported elsewhere", promote)
    publish_onnx.add_argument("onnx", metavar="ONNX_FILE", type=Path)
    publish_onnx.add_argument(
        "--metadata", required=True, type=Path, help="draft JSON (ModelDraft), or another store's metadata.json"
    )
    promote_cmd = command("promote", _promote, "serve VERSION by default", family)
    promote_cmd.add_argument("size", metavar="SIZE")
    promote_cmd.add_argument("version", metavar="VERSION", type=int)
    rollback = command("rollback", _rollback, "serve the previously promoted version again", family)
    rollback.add_argument("size", metavar="SIZE")
    default = command(
        "default", _default, "make MODEL answer requests that name SIZE and no family; WHY: the measurements"
    )
    default.add_argument("size", metavar="SIZE")
    default.add_argument("model", metavar="MODEL", help="a model name in the store, e.g. dsvgg5-ferplus_m")
    default.add_argument("--why", required=True, help="the measurements behind the decision, for /v1/models")
    command("verify", _verify, "check every version's files against its metadata, and the face detector's file")
    command("card", _card, "write MODEL_CARD.md for the served versions into the store")
    remove = command("remove", _remove, "delete a version that is not the served one", family)
    remove.add_argument("size", metavar="SIZE")
    remove.add_argument("version", metavar="VERSION", type=int)
    return parser


def _name(args: argparse.Namespace, store: ModelStore) -> str:
    try:
        return store.default_name(args.size) if args.family is None else model_name(args.family, args.size)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _list(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    if not store.models():
        print(f"no models in {store.root}")
        return 0
    print(f"{'MODEL':<20} {'VERSION':>7}  {'SERVED':<6} {'PARAMETERS':>10} {'BYTES':>10} {'TEST ACC':>8}  CREATED")
    for name in store.models():
        try:
            served: int | None = store.served_version(name)
        except IntegrityError:
            served = None
        for version in store.versions(name):
            mark = "*" if version == served else ""
            try:
                metadata = store.metadata(name, version)
            except IntegrityError:
                print(f"{name:<20} {version:>7}  {mark:<6} metadata unreadable, run verify")
                continue
            accuracy = metadata.metrics.test_accuracy
            shown = "-" if accuracy is None else f"{accuracy:.3f}"
            created = metadata.created_at.strftime("%Y-%m-%d %H:%M")
            print(
                f"{name:<20} {version:>7}  {mark:<6} {metadata.parameters:>10} {metadata.file_bytes:>10} "
                f"{shown:>8}  {created}"
            )
    return 0


def _default(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    try:
        store.set_default(args.size, args.model, args.why)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{args.size.upper()} → {args.model}")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    name = _name(args, store)
    version = store.served_version(name) if args.version is None else args.version
    print(store.metadata(name, version).to_json(), end="")
    return 0


def _publish_onnx(args: argparse.Namespace) -> int:
    store = ModelStore(args.store, create=True)
    try:
        draft = draft_from_json(args.metadata.read_bytes())
    except ValidationError as error:
        raise UsageError(f"{args.metadata}: not a model draft: {validation_summary(error)}") from None
    except ValueError as error:  # not JSON at all
        raise UsageError(f"{args.metadata}: not a model draft: {error}") from None
    return publish_file(store, args.onnx, draft, promote=args.promote)


def publish_file(store: ModelStore, onnx_path: Path, draft: ModelDraft, *, promote: bool) -> int:
    """Publish an exported model (and serve it with ``promote``), saying so on stdout; exit status 0."""
    version = store.publish(onnx_path, draft)
    name = model_name(draft.family, draft.size)
    if promote:
        store.promote(name, version)
    print(f"published {name} version {version}; serving version {store.served_version(name)}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    name = _name(args, store)
    store.promote(name, args.version)
    print(f"{name}: serving version {args.version}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    name = _name(args, store)
    print(f"{name}: serving version {store.rollback(name)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    problems = store.verify()
    for problem in problems:
        print(problem)
    versions = sum(len(store.versions(name)) for name in store.models())
    if problems:
        print(f"{len(problems)} problem(s) in {store.root}", file=sys.stderr)
        return 1
    print(f"ok: {versions} version(s) of {len(store.models())} model(s) and the face detector in {store.root}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from model_store.card import model_card

    store = ModelStore(args.store)
    path = store.root / "MODEL_CARD.md"
    path.write_text(model_card(store))
    print(path)
    return 0


def _remove(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    name = _name(args, store)
    store.remove(name, args.version)
    print(f"{name}: removed version {args.version}")
    return 0
