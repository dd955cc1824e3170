"""kiln fetch: download a character's pictures from an imageboard into the project."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, out

_Q = "Query options"
_N = "Network"


def fetch(
    site: Annotated[Optional[str], typer.Argument(help="danbooru, gelbooru, safebooru, e621 or e926 (omit both to replay saved queries).")] = None,
    query: Annotated[Optional[str], typer.Argument(help="Tags; `|` separates OR groups: \"a solo | a solo_focus\".")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Another host of the same software: a mirror, a self-hosted booru.")] = None,
    blacklist: Annotated[Optional[list[str]], typer.Option(help="Skip posts with these tags (space-separated; repeatable).", rich_help_panel=_Q)] = None,
    rating: Annotated[Optional[str], typer.Option(help="Ratings to keep, comma-separated: g,s,q,e / general,sensitive,questionable,explicit / safe, sfw, nsfw.", rich_help_panel=_Q)] = None,
    min_score: Annotated[Optional[int], typer.Option(help="Skip posts scored below this.", rich_help_panel=_Q)] = None,
    min_area: Annotated[Optional[str], typer.Option(help="Skip smaller images: pixels, or WxH such as 768x768.", rich_help_panel=_Q)] = None,
    sort: Annotated[Optional[str], typer.Option(help="score (highest first, the default), newest or oldest.", rich_help_panel=_Q)] = None,
    top: Annotated[Optional[int], typer.Option(help="Keep only the first N posts in that order.", rich_help_panel=_Q)] = None,
    prepend_tags: Annotated[Optional[str], typer.Option(help="Caption tags put first, comma-separated (not searched).", rich_help_panel=_Q)] = None,
    append_tags: Annotated[Optional[str], typer.Option(help="Caption tags put last, comma-separated (not searched).", rich_help_panel=_Q)] = None,
    replace_underscores: Annotated[Optional[bool], typer.Option("--replace-underscores/--keep-underscores", help="Caption tags with spaces instead of underscores.", rich_help_panel=_Q)] = None,
    max_short_side: Annotated[Optional[int], typer.Option(help="Downscale images whose short side is longer than this.", rich_help_panel=_Q)] = None,
    keep_original: Annotated[Optional[bool], typer.Option("--keep-original/--delete-original", help="With --max-short-side: keep the full-size file in images/originals/.", rich_help_panel=_Q)] = None,
    subset: Annotated[Optional[str], typer.Option(help="Subset (dataset folder) for these images; default main.", rich_help_panel=_Q)] = None,
    formats: Annotated[Optional[str], typer.Option(help="File types to download, comma-separated (default jpg,jpeg,png,webp).", rich_help_panel=_Q)] = None,
    save: Annotated[bool, typer.Option("--save", help="Also save this query in project.toml for later runs.")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask the site again instead of using cached API pages.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download files again even if already fetched.")] = False,
    rate: Annotated[Optional[float], typer.Option(help="Requests per second per host (default: the site's polite rate).", rich_help_panel=_N)] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel downloads (the per-host rate still holds).", rich_help_panel=_N)] = None,
    tag_limit: Annotated[Optional[int], typer.Option(help="Search terms your account may send (Danbooru: 2; Gold 6).", rich_help_panel=_N)] = None,
    page_size: Annotated[Optional[int], typer.Option(help="Posts per API page (at most the site's maximum).", rich_help_panel=_N)] = None,
    max_pages: Annotated[Optional[int], typer.Option(help="Stop each search after this many pages.", rich_help_panel=_N)] = None,
    deadline: Annotated[Optional[float], typer.Option(help="Seconds one answer (a page or a file) may take in all (default 600).", rich_help_panel=_N)] = None,
    max_file_mb: Annotated[Optional[float], typer.Option(help="Largest file to download, in MiB (default 200).", rich_help_panel=_N)] = None,
    list_sites: Annotated[bool, typer.Option("--list-sites", help="List the sites and their limits, then exit.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Search an imageboard and download matching posts, verified, into images/ (resumable)."""
    if list_sites:
        return _list_sites()
    from lorakiln.config.fetch import FetchConfig, SavedQuery
    from lorakiln.core.errors import KilnError
    from lorakiln.services import fetch as svc

    p = open_project(project, write=True)
    cfg: FetchConfig = p.resolve("fetch", {"rate": rate, "workers": workers, "tag_limit": tag_limit,
                                           "page_size": page_size, "max_pages": max_pages,
                                           "deadline": deadline, "max_file_mb": max_file_mb})
    progress = RichProgress()
    given = {"blacklist": blacklist, "rating": rating, "min_score": min_score, "min_area": min_area,
             "sort": sort, "top": top, "prepend_tags": prepend_tags, "append_tags": append_tags,
             "replace_underscores": replace_underscores, "max_short_side": max_short_side,
             "keep_original": keep_original, "subset": subset, "formats": formats, "base_url": base_url}
    if site is None:
        if save or query or any(v is not None for v in given.values()):
            raise KilnError("query options need SITE and QUERY (e.g. kiln fetch danbooru \"tag solo\" --top 50); "
                            "to change a saved query, edit [[fetch.queries]] in project.toml")
        svc.fetch_saved(p, cfg, progress, refresh=refresh, force=force, on_report=_show)
        return
    if not query:
        raise KilnError(f"give a QUERY after {site} (tags; `|` separates OR groups)")
    q = _query(SavedQuery, site, query, given)
    if replace_underscores is not None:  # a caption convention: it applies to the whole project
        p.set_section("caption", {"underscores": not replace_underscores})
    if save:
        added = svc.save_query(p, q)
        out.print("saved the query in project.toml" if added else "the query was already saved")
    _show(svc.fetch_query(p, q, cfg, progress, refresh=refresh, force=force))


def _query(model, site: str, query: str, given: dict):
    from pydantic import ValidationError

    from lorakiln.core.errors import KilnError

    try:
        return model(site=site, query=query, **{k: v for k, v in given.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise KilnError(f"command line: --{str(err['loc'][0]).replace('_', '-')}: {msg}") from None


def _show(r) -> None:
    out.print(f"[bold]{r.site}[/] {r.query!r} -> subset {r.subset} (query {r.fingerprint})")
    out.print(f"  pages: {r.pages} requested, {r.cached_pages} from cache; "
              f"{r.candidates} matching posts, {r.selected} selected")
    if r.excluded:
        out.print("  not matching: " + ", ".join(f"{k} ({v})" for k, v in r.excluded.most_common(6)))
    out.print(f"  images: [green]{r.downloaded} downloaded[/], {r.adopted} finished earlier, "
              f"{r.skipped} already fetched" + (f", [red]{sum(r.failed.values())} failed[/]" if r.failed else ""))
    for reason, n in r.failed.most_common():
        out.print(f"    [red]{reason}[/]: {n}")
    for note in r.notes:
        out.print(f"  [yellow]note:[/] {note}")


def _list_sites() -> None:
    from rich.table import Table

    from lorakiln.sources.registry import SITES

    t = Table("site", "host", "req/s", "page size", "tag limit", "about", header_style="bold")
    for name, s in SITES.items():
        t.add_row(name, s.base_url, f"{s.rate:g}", str(s.page_size), str(s.tag_limit or "-"), s.about)
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command()(fetch)
