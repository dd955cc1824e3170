"""kiln fetch: search a site, choose posts, download them verified into images/, record them.

Resumable and idempotent: API pages are cached under cache/fetch/ (only pages that parsed
cleanly), finished files are adopted instead of downloaded again, the manifest is saved every
few seconds (also while a download stalls) and at exit, and items that failed are retried by
the next run. A malformed post is skipped with its reason in the report; the rest goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from lorakiln import __version__
from lorakiln.config.credentials import SiteCredentials, credentials_path, load_credentials
from lorakiln.config.fetch import FetchConfig, SavedQuery
from lorakiln.core.atomic import clean_partials
from lorakiln.core.errors import KilnError
from lorakiln.core.manifest import ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.services.project import Project
from lorakiln.sources.base import BadPost, Post, SiteFamily, SiteSpec, SourceError, walk_pages
from lorakiln.sources.download import Outcome, Target, fetch_post
from lorakiln.sources.http import FetchError, HttpClient, PageCache, RetryPolicy
from lorakiln.sources.query import (
    criteria_for,
    fingerprint,
    parse_query,
    plan_search,
    reject_reason,
    select,
)
from lorakiln.sources.registry import SITES


@dataclass
class QueryReport:
    site: str
    query: str
    subset: str
    fingerprint: str
    pages: int = 0  # requested from the site
    cached_pages: int = 0  # answered from cache/fetch/
    candidates: int = 0  # posts that matched the whole query
    excluded: Counter = field(default_factory=Counter)  # posts seen but not matching (or malformed), by reason
    selected: int = 0  # after sort and --top
    downloaded: int = 0
    adopted: int = 0  # finished files found from an interrupted run
    skipped: int = 0  # already in the manifest
    failed: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


# -- entry points ---------------------------------------------------------------------------
def fetch_query(project: Project, query: SavedQuery, cfg: FetchConfig, progress: Progress, *,
                refresh: bool = False, force: bool = False,
                environ: Mapping[str, str] | None = None) -> QueryReport:
    """Run one query end to end."""
    q = cfg.effective(query)
    spec = SITES.get(q.site)
    family = spec.family(spec, q.base_url)
    creds = load_credentials(spec.credentials_key, environ)
    options = {k: getattr(q, k) for k in ("blacklist", "rating", "min_score", "min_area", "sort", "top", "formats")}
    report = QueryReport(spec.name, q.query, q.subset, fingerprint(spec.name, family.base_url, q.query, options))
    with make_client(spec, family, creds, cfg, report.notes.append, environ) as client:
        try:
            posts = search(family, client, PageCache(project.cache_dir / "fetch" / spec.name), q, cfg,
                           progress, report, refresh=refresh)
        except (FetchError, SourceError) as e:  # a site's words may echo a credential
            raise FetchError(_hint(client.redact(str(e)), spec, environ)) from None
        chosen = select(posts, q.sort, q.top)
        report.selected = len(chosen)
        download(project, client, chosen, q, report, progress, workers=cfg.workers, force=force,
                 save_every=cfg.save_every)
    return report


def fetch_saved(project: Project, cfg: FetchConfig, progress: Progress, *, refresh: bool = False,
                force: bool = False, environ: Mapping[str, str] | None = None,
                on_report: Callable[[QueryReport], None] = lambda r: None) -> list[QueryReport]:
    """Replay every [[fetch.queries]] entry; one failing query does not stop the others."""
    if not cfg.queries:
        raise KilnError(f"{project.config_path}: no saved queries in [fetch]; "
                        "run `kiln fetch SITE QUERY --save` to add one")
    reports, errors = [], []
    for q in cfg.queries:
        try:
            reports.append(fetch_query(project, q, cfg, progress, refresh=refresh, force=force, environ=environ))
            on_report(reports[-1])
        except KilnError as e:
            errors.append(f"{q.site} {q.query!r}: {e}")
    if errors:
        raise KilnError("some saved queries failed:\n  " + "\n  ".join(errors))
    return reports


def save_query(project: Project, query: SavedQuery) -> bool:
    """Add the query to [[fetch.queries]] in project.toml; False if an identical one is there."""
    current = list(project.section_doc("fetch").get("queries") or [])
    entry = {"site": query.site, "query": query.query,
             **({"base_url": query.base_url} if query.base_url else {}), **query.options()}
    if entry in current:
        return False
    project.set_section("fetch", {"queries": [*current, entry]})
    return True


# -- the client -------------------------------------------------------------------------------
def user_agent(spec: SiteSpec, creds: SiteCredentials, environ: Mapping[str, str] | None = None) -> str:
    base = f"lorakiln/{__version__}"
    if not spec.needs_username:
        return base
    if not creds.who:
        key = spec.credentials_key.upper()
        raise KilnError(f"{spec.name} asks every API client to name its user in the User-Agent: set "
                        f"KILN_{key}_USERNAME (or KILN_{key}_LOGIN), or `username` under "
                        f"[{spec.credentials_key}] in {credentials_path(environ)}")
    return f"{base} (by {creds.who} on {spec.name})"


def make_client(spec: SiteSpec, family: SiteFamily, creds: SiteCredentials, cfg: FetchConfig,
                note: Callable[[str], None], environ: Mapping[str, str] | None = None) -> HttpClient:
    rate = cfg.rate or spec.rate
    if spec.max_rate and _host(family.base_url) == _host(spec.base_url) and rate > spec.max_rate:
        note(f"{spec.name} allows at most {spec.max_rate:g} requests/s; using that instead of {rate:g}")
        rate = spec.max_rate
    auth = family.auth(creds.login, creds.key, creds.user_id)
    return HttpClient(user_agent=user_agent(spec, creds, environ), rate=rate,
                      api_host=urlsplit(family.base_url).hostname or "", basic_auth=auth.basic,
                      secret_params=dict(auth.params), timeout=cfg.timeout,
                      policy=RetryPolicy(cfg.retries, cfg.backoff, cfg.max_retry_wait),
                      deadline=cfg.deadline, max_file_mb=cfg.max_file_mb)


def _host(url: str) -> str:
    """The host a rate cap belongs to: `http://www.e621.net/` is still e621.net."""
    return (urlsplit(url).hostname or "").removeprefix("www.")


def _hint(message: str, spec: SiteSpec, environ: Mapping[str, str] | None) -> str:
    """Add what the user can do about a refusal: set credentials, or lower --tag-limit."""
    key = spec.credentials_key.upper()
    if "HTTP 401" in message or "HTTP 403" in message:
        fields = "KILN_{0}_USER_ID and KILN_{0}_API_KEY" if spec.family.__name__ == "Gelbooru" \
            else "KILN_{0}_LOGIN and KILN_{0}_API_KEY"
        return (f"{message}\n  credentials: set {fields.format(key)}, or a [{spec.credentials_key}] table in "
                f"{credentials_path(environ)}")
    if "HTTP 422" in message and "tags" in message:
        return f"{message}\n  your account searches fewer tags at once: lower --tag-limit (the rest is filtered locally)"
    return message


# -- search ----------------------------------------------------------------------------------
def search(family: SiteFamily, client: HttpClient, cache: PageCache, q: SavedQuery, cfg: FetchConfig,
           progress: Progress, report: QueryReport, *, refresh: bool = False) -> list[Post]:
    """Walk each OR group's pages and keep the posts that match the whole query."""
    spec = family.spec
    groups = parse_query(q.query, family)
    crit = criteria_for(family, blacklist=q.blacklist, ratings=q.rating, min_score=q.min_score,
                        min_area=q.min_area, formats=q.formats)
    page_size = min(cfg.page_size or spec.page_size, spec.page_size)
    found: dict[int, Post] = {}
    rejected: dict[int, str] = {}
    malformed: dict[Any, str] = {}  # reason by post id (OR groups may meet a post twice)
    pages = _CachedPages(client, cache, report, refresh, family)

    def keep_bad(bad: BadPost) -> None:
        malformed.setdefault(bad.id or object(), bad.reason)

    with progress.task(f"{spec.name} pages") as task:
        for group in groups:
            plan = plan_search(group, crit, family, tag_limit=cfg.tag_limit or spec.tag_limit,
                               want_score_order=(q.sort == "score" and q.top is not None))
            matched, seen_tags = 0, set()
            for posts in walk_pages(family, list(plan.terms), pages.fetch, page_size=page_size,
                                    by_id=not plan.remote_sort, max_pages=cfg.max_pages,
                                    on_note=report.notes.append, on_bad=keep_bad, on_page=pages.parsed):
                for p in posts:
                    seen_tags |= p.tag_set
                    reason = reject_reason(p, group, plan, crit)
                    if reason is None:
                        found.setdefault(p.id, p)
                        matched += 1
                    else:
                        rejected.setdefault(p.id, reason)
                task.advance(1, posts=len(found))
                if plan.remote_sort and q.top is not None and matched >= q.top:
                    break
            _alias_notes(plan.local, seen_tags, report.notes)
    report.candidates = len(found)
    report.excluded = Counter(r for pid, r in rejected.items() if pid not in found)
    _malformed_notes(list(malformed.values()), client.redact, report)
    return list(found.values())


MAX_MALFORMED_NOTES = 10


def _malformed_notes(reasons: list[str], redact: Callable[[str], str], report: QueryReport) -> None:
    if reasons:
        report.excluded["malformed post"] += len(reasons)
    report.notes += [redact(r) for r in reasons[:MAX_MALFORMED_NOTES]]
    if len(reasons) > MAX_MALFORMED_NOTES:
        report.notes.append(f"skipped {len(reasons) - MAX_MALFORMED_NOTES} more malformed posts")


class _CachedPages:
    """API pages through cache/fetch/: a page fetched from the site is kept only once it parsed
    with every post well formed, and a cached page that does not is dropped, so a bad answer is
    asked for again by the next run instead of being replayed."""

    def __init__(self, client: HttpClient, cache: PageCache, report: QueryReport, refresh: bool,
                 family: SiteFamily):
        self.client, self.cache, self.report, self.refresh = client, cache, report, refresh
        self.family = family
        self.authed = bool(client.basic_auth or client.secret_params)
        self._last: tuple[str, str, Any, bool] | None = None  # key, public url, body, from the site

    def fetch(self, url: str, params: dict[str, str]) -> Any:
        public = self.client.public(url, params)
        key = self.cache.key(public, self.authed)
        self._last = None
        if not self.refresh:
            hit, body = self.cache.get(key)
            if hit and self._readable(key, body):
                self.report.cached_pages += 1
                self._last = (key, public, body, False)
                return body
        body = self.client.get_json(url, params)
        self._last = (key, public, body, True)
        self.report.pages += 1
        return body

    def parsed(self, clean: bool) -> None:
        if self._last is not None:
            key, public, body, fresh = self._last
            if clean and fresh:
                self.cache.put(key, public, body)
            elif not clean and not fresh:
                self.cache.drop(key)
        self._last = None

    def _readable(self, key: str, body: Any) -> bool:
        """Whether a cached page has the shape of a page (one cached by an older kiln may not)."""
        try:
            self.family.raw_posts(body)
        except SourceError:
            self.cache.drop(key)
            return False
        return True


def _alias_notes(local: tuple[str, ...], seen: set[str], notes: list[str]) -> None:
    for t in local:
        if seen and t not in seen:
            notes.append(f"no post carries the tag {t!r} (checked locally, beyond the site's tag limit); "
                         "if it is an alias, write the tag the site uses")


# -- download ---------------------------------------------------------------------------------
INTERRUPT_GRACE = 3.0  # seconds downloads in flight get to finish after Ctrl-C before they are cancelled


def download(project: Project, client: HttpClient, posts: list[Post], q: SavedQuery, report: QueryReport,
             progress: Progress, *, workers: int = 4, force: bool = False, save_every: float = 2.0) -> None:
    """Fetch every chosen post not already done; record each outcome in the manifest, saved every
    `save_every` seconds while anything is unsaved, even while every download is stalled."""
    clean_partials(project.images_dir)
    manifest = project.manifest()
    todo = [p for p in posts if _needs_fetch(manifest.get(f"{p.site}-{p.id}"), project, force, report)]
    with progress.task(f"{report.site} images", total=len(todo)) as task, \
            ManifestSaver(manifest, every=save_every) as saver, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fetch_post, client, p, _target(project, p, q), force): p for p in todo}
        pending, unsaved, saved_at = set(futures), False, time.monotonic()
        try:
            while pending:
                done, pending = wait(pending, timeout=save_every, return_when=FIRST_COMPLETED)
                for fut in done:
                    post, outcome = futures[fut], fut.result()
                    manifest.add(build_record(manifest.get(f"{post.site}-{post.id}"), post, outcome, q,
                                              report.fingerprint, client.public, project.rel, client.redact))
                    _count(report, outcome)
                    task.advance(1, ok=report.downloaded + report.adopted, failed=sum(report.failed.values()))
                    unsaved = True
                if unsaved and time.monotonic() - saved_at >= save_every:
                    saver.flush()
                    unsaved, saved_at = False, time.monotonic()
        except BaseException:
            try:  # files about to finish may finish (the next run adopts them); stalled ones stop
                wait(pending, timeout=INTERRUPT_GRACE)
            finally:
                client.cancel()
                for f in futures:
                    f.cancel()
            raise


def _needs_fetch(rec: ImageRecord | None, project: Project, force: bool, report: QueryReport) -> bool:
    if rec is None or rec.status == Status.error:
        return True
    if rec.status == Status.dropped:  # a later stage's decision; leave it alone
        report.skipped += 1
        return False
    if force or not (rec.file and project.abs(rec.file).exists()):
        return True
    report.skipped += 1
    return False


def _target(project: Project, post: Post, q: SavedQuery) -> Target:
    return Target.for_post(post, project.images_dir, q.max_short_side, q.keep_original)


def _count(report: QueryReport, outcome: Outcome) -> None:
    if not outcome.ok:
        report.failed[(outcome.reason or "unknown").split(":", 1)[0]] += 1
    elif outcome.downloaded:
        report.downloaded += 1
    else:
        report.adopted += 1


def build_record(old: ImageRecord | None, post: Post, outcome: Outcome, q: SavedQuery, fp: str,
                 public: Callable[[str], str], rel: Callable[[Any], str],
                 redact: Callable[[str], str] = lambda t: t) -> ImageRecord:
    """The manifest record for a post after a download attempt; stage data of `old` is kept."""
    rec = old.model_copy(deep=True) if old else ImageRecord(id=f"{post.site}-{post.id}", source=post.site,
                                                           subset=q.subset)
    rec.post_id, rec.post_url = str(post.id), public(post.post_url)
    rec.file_url = public(post.file_url) if post.file_url else None
    rec.rating, rec.score, rec.created_at = post.rating, post.score, post.created_at
    rec.tags = {c: list(t) for c, t in post.tags.items()}
    rec.extra = {**rec.extra, "fetch": {
        "site": post.site, "query": q.query, "fingerprint": fp,
        "caption": {"prepend": q.prepend_tags, "append": q.append_tags,
                    "replace_underscores": q.replace_underscores}}}
    if not outcome.ok:
        rec.md5, rec.width, rec.height = post.md5, post.width or None, post.height or None
        rec.fail(redact(outcome.reason or "unknown error"))
        return rec
    rec.file, rec.original = rel(outcome.file), rel(outcome.original) if outcome.original else None
    rec.md5, rec.sha256 = outcome.md5, outcome.sha256
    rec.width, rec.height, rec.format = outcome.width, outcome.height, outcome.format
    if rec.status == Status.error:
        rec.restore()
    return rec

