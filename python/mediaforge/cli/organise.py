"""Commands to organise and find: `tag`, `collection`, `xmp` and `search`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import ExitCode, InvalidInputError, MediaForgeError, first_line, is_text, path_text, quoted
from . import render
from .app import (Format, FormatOption, IndexBehind, OutputOption, _globals, _write_table, app, check_output_args,
                  command, open_catalog, shows_bars)

if TYPE_CHECKING:
    from ..catalog import Catalog

tag_app = typer.Typer(no_args_is_help=True, help="Hierarchical tags on files (they follow moves and renames).")
coll_app = typer.Typer(no_args_is_help=True, help="Collections: ordered sets of files, or smart ones (saved SQL).")
xmp_app = typer.Typer(no_args_is_help=True, help="Tags and collections to and from XMP sidecars.")
app.add_typer(tag_app, name="tag")
app.add_typer(coll_app, name="collection")
app.add_typer(xmp_app, name="xmp")


def sub(group: typer.Typer, name: str):  # noqa: ANN201
    return command(name, group)


PathsArg = Annotated[Optional[list[str]], typer.Argument(help="Files, folders or globs (quoted) from the catalog.",
                                                         show_default=False)]
# Each may be given more than once: the files named are the union of all.
WhereOpt = Annotated[Optional[list[str]], typer.Option("--where", help="A SQL condition over the `library` view "
                                                                       "(again: either).", show_default=False)]
CollOpt = Annotated[Optional[list[str]], typer.Option("--collection", help="The members of this collection "
                                                                           "(again: of either).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


class IndexFollows:
    """Keeps the search index (when there is one) in step with a change of tags or
    collections: entered before the change, `done` after it. Cut short in between, the
    index is left marked behind, and the next search or scan brings it up to date; a
    change refused as bad input before it was made leaves the mark as it was."""

    def __init__(self, cat: Catalog, catalog_path: Path, show: bool = False) -> None:
        from ..organise.search import hold_step

        self.cat, self.catalog_path, self.show = cat, catalog_path, show
        self.held = hold_step(cat, catalog_path)
        self.finished = False
        self.failure: MediaForgeError | None = None

    def __enter__(self) -> IndexFollows:
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: object) -> None:
        if kind is not None and issubclass(kind, InvalidInputError) and not self.finished and self.held is not None:
            from ..organise.search import unhold_step

            unhold_step(self.cat, self.held)  # refused before it changed anything

    def done(self, ids: list[str] | None = None, later: bool = False) -> None:
        """Only the documents of `ids` when the command knows them, else by digest. An
        index that cannot be written is an error saying the change itself is committed;
        `later`: kept as `failure`, for `_report` to raise once the command has said what
        it did."""
        from ..organise.search import refresh_changed

        self.finished = True
        try:
            with render.IndexProgressBar(self.show) as bar:
                refresh_changed(self.cat, self.catalog_path, ids, self.held, bar.update)
        except (MediaForgeError, OSError) as e:
            if isinstance(e, InvalidInputError):  # a damaged index: its own message says what to run
                self.failure = type(e)(f"{first_line(e)}; the change is saved in the catalog")
            else:  # (a busy index keeps its exit code, 4)
                self.failure = IndexBehind.after(e, "the change")
            if not later:
                raise self.failure from None


def _report(as_json: bool, text: str, follow: IndexFollows | None = None, **data: object) -> None:
    """Print what a command did; then, when the search index could not follow it, that
    error (with `--json`, also as `index`: `{"error": ...}`)."""
    failure = follow.failure if follow is not None else None
    if as_json:
        render.dump_json(dict(data, **({"index": {"error": first_line(failure)}} if failure else {})))
    else:
        print(text)
    if failure is not None:
        raise failure


@sub(tag_app, "add")
def tag_add(ctx: typer.Context, tag: Annotated[str, typer.Argument(help="A tag; '/' nests: places/france/paris.")],
            paths: PathsArg = None, where: WhereOpt = None, collection: CollOpt = None, as_json: JsonOpt = False) -> None:
    """Tag files: PATH..., every result of --where, or a collection's members."""
    from ..organise.tags import add_tags, normalize_tag
    from ..organise.targets import resolve_targets

    g = _globals(ctx)
    tag = normalize_tag(tag)  # as stored: `/places/ paris` is places/paris
    with open_catalog(g.catalog) as cat:
        ids = resolve_targets(cat, paths or [], where, collection, sidecars_below=False)
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            n = add_tags(cat, ids, [tag])
            follow.done(ids, later=True)
    _report(as_json, f"tagged {render.counted(n, 'file')} with {tag} ({len(ids) - n:,} had it already)", follow,
            tag=tag, added=n, files=len(ids))


@sub(tag_app, "remove")
def tag_remove(ctx: typer.Context, tag: Annotated[str, typer.Argument(help="A tag (its subtree goes too).")],
               paths: PathsArg = None, where: WhereOpt = None, collection: CollOpt = None,
               as_json: JsonOpt = False) -> None:
    """Remove a tag (and the tags below it) from files."""
    from ..organise.tags import remove_tags, tag_name
    from ..organise.targets import resolve_targets

    g = _globals(ctx)
    with open_catalog(g.catalog) as cat:
        ids = resolve_targets(cat, paths or [], where, collection, missing_too=True)
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            n = remove_tags(cat, ids, [tag])
            follow.done(ids, later=True)
    _report(as_json, f"removed {render.counted(n, 'tag')}", follow, tag=tag_name(tag), removed=n)


@sub(tag_app, "rename")
def tag_rename(ctx: typer.Context, old: Annotated[str, typer.Argument(help="Tag to rename, with its subtree.")],
               new: Annotated[str, typer.Argument(help="Its new name.")], as_json: JsonOpt = False) -> None:
    """Rename a tag and everything below it, on every file."""
    from ..organise.tags import rename_tag

    g = _globals(ctx)
    with open_catalog(g.catalog) as cat:
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            n, ids = rename_tag(cat, old, new)
            follow.done(ids, later=True)  # only the files that had the tag: not a comparison of every document
    _report(as_json, f"renamed {render.counted(n, 'tag')}", follow, renamed=n)


@sub(tag_app, "list")
def tag_list(ctx: typer.Context, paths: PathsArg = None,
             fmt: FormatOption = Format.table,
             output: OutputOption = None,
             ) -> None:
    """Every tag with its file counts, or the tags of the files given."""
    from ..organise.tags import tag_counts, tags_of
    from ..organise.targets import resolve_targets

    g = _globals(ctx)
    check_output_args(fmt, output, g.catalog)
    with open_catalog(g.catalog, read_only=True) as cat:
        table = tags_of(cat, resolve_targets(cat, paths, missing_too=True)) if paths else tag_counts(cat)
    if fmt is Format.table and output is None:
        render.print_table(table, hide=("path_raw",), exact=("path",))
    else:
        _write_table(table, fmt, output, g.catalog)


@sub(coll_app, "create")
def coll_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The collection's name.")],
                smart: Annotated[Optional[str], typer.Option(
                    "--smart", help="Make it smart: a SQL condition over the `library` view, evaluated live.")] = None,
                as_json: JsonOpt = False) -> None:
    """Create a collection (manual, or --smart with a checked SQL condition)."""
    from ..organise import collection

    g = _globals(ctx)
    follow: IndexFollows | None = None
    with open_catalog(g.catalog) as cat:
        if not smart:
            collection.create(cat, name, smart)
            name = collection.stored_name(name)  # as stored: trimmed
            count = 0
        else:
            from ..organise.predicate import check_predicate, reads_clock

            with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:  # its name is a search word for the files it matches
                _, ids = collection.create(cat, name, smart)
                name = collection.stored_name(name)
                count = len(ids)
                # (Unless it reads the clock: see `smart_collections`.)
                follow.done([] if reads_clock(cat, check_predicate(cat, smart)) else ids, later=True)
    _report(as_json, f"created {'smart ' if smart else ''}collection {quoted(name)}"
            + (f": {render.counted(count, 'file')} now" if smart else ""), follow,
            name=name, kind="smart" if smart else "manual", files=count)


def _change_members(ctx: typer.Context, name: str, paths: list[str] | None, where: list[str] | None,
                    other: list[str] | None, as_json: bool, adding: bool) -> None:
    from ..organise import collection
    from ..organise.targets import resolve_targets

    g = _globals(ctx)
    with open_catalog(g.catalog) as cat:
        # A name that will not do is refused before any path is looked up; the report names
        # it as stored (a no-break space typed is a space, NFD is NFC).
        name = collection.name_of(cat, collection.manual(cat, name, adding))
        ids = resolve_targets(cat, paths or [], where, other, missing_too=not adding, sidecars_below=not adding)
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            n = (collection.add if adding else collection.remove)(cat, name, ids)
            follow.done(ids, later=True)
    verb = "added" if adding else "removed"
    _report(as_json, f"{verb} {render.counted(n, 'file')} {'to' if adding else 'from'} {quoted(name)}", follow,
            name=name, **{verb: n})


@sub(coll_app, "add")
def coll_add(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A manual collection.")],
             paths: PathsArg = None, where: WhereOpt = None, collection_: CollOpt = None,
             as_json: JsonOpt = False) -> None:
    """Append files to a manual collection: PATH..., --where results or another collection."""
    _change_members(ctx, name, paths, where, collection_, as_json, adding=True)


@sub(coll_app, "remove")
def coll_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A manual collection.")],
                paths: PathsArg = None, where: WhereOpt = None, collection_: CollOpt = None,
                as_json: JsonOpt = False) -> None:
    """Take files out of a manual collection."""
    _change_members(ctx, name, paths, where, collection_, as_json, adding=False)


@sub(coll_app, "list")
def coll_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every collection with its kind, condition and current size."""
    import pyarrow as pa

    from ..organise import collection

    g = _globals(ctx)
    with open_catalog(g.catalog, read_only=True) as cat:
        rows = collection.listing(cat)
    if as_json:
        render.dump_json(rows)
    elif rows:
        render.print_table(pa.Table.from_pylist(rows).drop_columns(["id"]))
    else:
        print("no collections yet: mediaforge collection create NAME [--smart CONDITION]")


@sub(coll_app, "show")
def coll_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A collection.")],
              fmt: FormatOption = Format.table,
              output: OutputOption = None,
              ) -> None:
    """The files of a collection, in order (smart ones: evaluated now)."""
    from ..organise import collection

    g = _globals(ctx)
    check_output_args(fmt, output, g.catalog)
    with open_catalog(g.catalog, read_only=True) as cat:
        table = collection.show(cat, name)
    if fmt is Format.table and output is None:
        render.print_table(table, hide=("media_id", "path_raw"), exact=("path",))
        print(f"{render.counted(table.num_rows, 'file')}")
    else:
        _write_table(table, fmt, output, g.catalog)


@sub(coll_app, "delete")
def coll_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A collection.")],
                as_json: JsonOpt = False) -> None:
    """Delete a collection (its files are not touched)."""
    from ..organise import collection

    g = _globals(ctx)
    with open_catalog(g.catalog) as cat:
        try:
            ids: list[str] | None = collection.members(cat, name)
        except InvalidInputError:  # a smart condition that fails on today's files: compare every document
            ids = None
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            collection.delete(cat, name)
            follow.done(ids, later=True)
    _report(as_json, f"deleted collection {quoted(name)}", follow, name=name, deleted=True)


@sub(xmp_app, "import")
def xmp_import(ctx: typer.Context, as_json: JsonOpt = False,
               all_: Annotated[bool, typer.Option(
                   "--all", help="Every linked sidecar again, also those imported before "
                                 "(brings back tags removed since).")] = False) -> None:
    """Tags and collections from the keywords of the XMP sidecars the scan has read.
    Scans do this on their own for new and edited sidecars; `--all` imports every one again."""
    from ..organise.xmp import import_xmp

    g = _globals(ctx)
    with open_catalog(g.catalog) as cat:
        with IndexFollows(cat, g.catalog, shows_bars(g, as_json)) as follow:
            got = import_xmp(cat, everything=all_)
            follow.done(got.media_ids, later=True)  # the files whose sidecars it read, as after a scan
    gone = f"; took off {render.counted(got.removed, 'tag')} their sidecars no longer hold" if got.removed else ""
    placed = f" and {render.counted(got.placed, 'collection place')}" if got.placed else ""
    _report(as_json, f"imported {render.counted(got.tags, 'tag')}{placed} from XMP sidecars{gone}", follow,
            added=got.tags, placed=got.placed, removed=got.removed)


@sub(xmp_app, "export")
def xmp_export(ctx: typer.Context, paths: PathsArg = None, where: WhereOpt = None, collection: CollOpt = None,
               all_: Annotated[bool, typer.Option("--all", help="Every tagged file.")] = False,
               dry_run: Annotated[bool, typer.Option(
                   "--dry-run", help="Say which sidecars would change, and how; write nothing.")] = False,
               as_json: JsonOpt = False) -> None:
    """Write tags and collections into XMP sidecars (dc:subject, lr:hierarchicalSubject,
    digiKam:TagsList): added to the sidecar a file has, or to a new FILE.xmp beside it.
    Tags removed here leave a sidecar MediaForge wrote or imported; every other part of
    a sidecar is kept. --dry-run shows the keywords each sidecar would gain and lose."""
    from ..organise.targets import resolve_targets
    from ..organise.xmp import export_xmp

    g = _globals(ctx)
    # Writes (what it wrote counts as imported); a dry run only reads, also where the
    # catalog is on a read-only disk.
    with open_catalog(g.catalog, read_only=dry_run) as cat:
        if all_:
            # Tagged files, and those whose sidecar MediaForge imported or wrote: a tag
            # taken off since may have to leave it.
            ids = [str(r[0]) for r in cat.con.sql(
                "SELECT DISTINCT media_id FROM tags UNION SELECT DISTINCT media_id FROM collection_items "
                "UNION SELECT DISTINCT media_id FROM xmp_imports").fetchall()]
        elif not paths and not where and not collection:
            raise InvalidInputError("say what to act on: PATH..., --where CONDITION, --collection NAME or --all")
        else:
            ids = resolve_targets(cat, paths or [], where, collection)
        with render.ExtractProgressBar(shows_bars(g, as_json), "export", "failed") as bar:
            out = export_xmp(cat, ids, dry_run=dry_run, on_progress=bar.step)
    if dry_run:
        _print_export_plan(out, as_json)
    elif as_json:
        render.dump_json({"written": [render.path_fields("path", p) for p in out.written], "unchanged": out.unchanged,
                          "sidecars_skipped": out.sidecars_skipped,
                          "failed": [{**render.path_fields("path", p), "why": w} for p, w in out.failed]})
    else:
        for p, why in out.failed:
            print(f"failed {path_text(p)}: {why}", file=sys.stderr)
        skipped = f", {out.sidecars_skipped:,} tagged sidecars skipped" if out.sidecars_skipped else ""
        failed = f", {len(out.failed):,} failed (listed above)" if out.failed else ""
        print(f"{render.counted(len(out.written), 'sidecar')} written, {out.unchanged:,} already up to date{skipped}"
              f"{failed}" + ("; rescan to catalog them" if out.written else ""))
    if out.failed:
        raise typer.Exit(ExitCode.PARTIAL)


def _print_export_plan(out, as_json: bool) -> None:  # noqa: ANN001
    """An export's dry run: each sidecar it would write, with the keywords it would gain
    (`add`) and lose (`remove`), hierarchical ones `/`-separated as tags are."""
    if as_json:
        render.dump_json({"dry_run": True, "would_write": [
            {**render.path_fields("path", p), "add": out.changes[p][0], "remove": out.changes[p][1]}
            for p in out.written], "unchanged": out.unchanged, "sidecars_skipped": out.sidecars_skipped,
            "failed": [{**render.path_fields("path", p), "why": w} for p, w in out.failed]})
        return
    for p, why in out.failed:
        print(f"failed {path_text(p)}: {why}", file=sys.stderr)
    for p in out.written:
        add, remove = out.changes[p]
        # Neither gained nor lost: a keyword it holds in one list (digiKam's alone, say)
        # goes into the others.
        print(f"{path_text(p)}: " + (" ".join([f"+{k}" for k in add] + [f"-{k}" for k in remove])
                                    or "its keywords written into its other keyword lists"))
    print(f"dry run: {render.counted(len(out.written), 'sidecar')} would be written, {out.unchanged:,} already up "
          "to date; run without --dry-run to write them")


# Seconds a search waits for another process's hold on the catalog to end.
SEARCH_WAIT_S = 10.0


def _filter_kept_whole(arg: str) -> str:
    """One argument of several, as the search reads it: a `key:value` whose value holds
    spaces (the shell's quotes gone), a quote or a backslash quoted again, so it is read
    as the shell passed it; else as it is (and a value in quotes of its own)."""
    key, colon, value = arg.partition(":")
    if key.lower().removeprefix("-") not in ("tag", "collection", "kind", "ext", "year") or not colon \
            or value.startswith('"') \
            or not any(c.isspace() or c in '"\\' for c in value):
        return arg
    return f'{key}:"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _args_as_words(args: list[str]) -> list[str]:
    """Several arguments as the search reads them joined (`_filter_kept_whole`); and an
    argument of words with spaces beside an `OR` of its own (`search 'new york' OR
    paris`) is one alternative, quoted again: joined as it is, only its last word would
    be one (`new` and either `york` or `paris`)."""
    out = []
    for k, arg in enumerate(args):
        beside_or = "OR" in args[max(k - 1, 0):k] + args[k + 1:k + 2]
        if arg != "OR" and beside_or and any(c.isspace() for c in arg) and '"' not in arg:
            out.append('"' + arg.replace("\\", "\\\\") + '"')
        else:
            out.append(_filter_kept_whole(arg))
    return out


@command("search")
def search_cmd(
    ctx: typer.Context,
    words: Annotated[Optional[list[str]], typer.Argument(
        help="Words and filters: kind:video ext:jpg year:2019 year:2018..2020 tag:family collection:NAME "
             "(one argument or several).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="Most results.")] = 20,
    reindex: Annotated[bool, typer.Option("--reindex", help="Rebuild the index from the catalog first.")] = False,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
) -> None:
    """Full-text search over names, folders, tags, collections and metadata, ranked."""
    from ..organise.search import DAMAGED, in_step, refresh, search

    g = _globals(ctx)
    check_output_args(fmt, output, g.catalog)
    # Several arguments are one search (`search paris 2019`, as typed without quotes); a
    # filter's value the shell kept whole (`tag:"new york"`) stays whole.
    query = (words[0] if len(words) == 1 else " ".join(_args_as_words(words))) if words else None
    if query is not None and not is_text(query):  # checked before any indexing
        raise InvalidInputError("the search holds bytes that are not valid UTF-8")
    if query is None and reindex and (output is not None or fmt not in (Format.table, Format.json)):
        raise InvalidInputError("--reindex with no search writes no results: give a search to write them "
                                "(or --format json alone for the index's summary)")
    # Searches started together may find the index behind: one catches it up while the
    # others wait for it (a few seconds at most), then they all read.
    wait = SEARCH_WAIT_S
    if not reindex:
        with open_catalog(g.catalog, read_only=True, wait=wait) as cat:
            stale = not in_step(cat, g.catalog)
    if reindex or stale:
        with open_catalog(g.catalog, wait=wait) as cat, render.IndexProgressBar(shows_bars(g)) as bar:
            r = refresh(cat, g.catalog, rebuild=reindex, on_progress=bar.update)
        if query is None and fmt is Format.json:
            render.dump_json({"indexed": r.indexed, "total": r.total, "seconds": r.seconds})
        elif query is None or fmt is Format.table:
            import sys

            print(f"indexed {render.counted(r.indexed, 'file')} in {r.seconds:.1f} s ({r.total:,} in the index)", file=sys.stderr)
    if query is None:
        if not reindex:
            raise InvalidInputError("give a search, e.g. mediaforge search \"paris 2019 kind:image\"")
        return
    # A table says whether --limit cut the results: one more is asked for to tell.
    wanted = limit + 1 if fmt is Format.table and output is None else limit
    try:
        with open_catalog(g.catalog, read_only=True, wait=wait) as cat:
            table = search(cat, g.catalog, query, wanted)
    except InvalidInputError as e:
        if DAMAGED not in str(e):
            raise
        # Its files are not what this version writes (a crash in the middle of a write, a
        # hand edit): built again from the catalog, as a missing one is, then searched.
        with open_catalog(g.catalog, wait=wait) as cat, render.IndexProgressBar(shows_bars(g)) as bar:
            refresh(cat, g.catalog, rebuild=True, on_progress=bar.update)
        with open_catalog(g.catalog, read_only=True, wait=wait) as cat:
            table = search(cat, g.catalog, query, wanted)
    if fmt is Format.table and output is None:
        cut = table.num_rows > limit
        table = table.slice(0, limit)
        if table.num_rows:
            render.print_table(table, hide=("media_id", "path_raw"), exact=("path",))
        more = f" (the best {limit:,}: --limit shows more)" if cut else ""
        print(f"{render.counted(table.num_rows, 'result')}{more}")
    else:
        _write_table(table, fmt, output, g.catalog)
