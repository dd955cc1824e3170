"""Pure parts of `kiln fetch`: query parsing, planning within tag limits, local checks,
ordering, captions, paging, rate limiting, redaction, config and credentials."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from lorakiln.config.credentials import load_credentials
from lorakiln.config.fetch import FetchConfig, QueryOptions, SavedQuery
from lorakiln.core.errors import ConfigError
from lorakiln.sources.base import Cursor, Post, SiteSpec, walk_pages
from lorakiln.sources.http import RateLimiter, public_url, redact, retry_after_seconds
from lorakiln.sources.query import (
    QueryError,
    criteria_for,
    fingerprint,
    parse_query,
    plan_search,
    reject_reason,
    select,
)
from lorakiln.sources.registry import SITES


def family(name):
    spec = SITES.get(name)
    return spec.family(spec)


def post(pid, tags=(), score=0, rating="general", w=800, h=1000, ext="jpg", **kw):
    return Post(site="danbooru", id=pid, post_url=f"u/{pid}", file_url=f"f/{pid}.{ext}", md5=None, ext=ext,
                width=w, height=h, rating=rating, score=score, tags={"general": tuple(tags)}, **kw)


# -- parsing ----------------------------------------------------------------------------------
def test_parse_groups_metatags_and_colon_tags():
    fam = family("danbooru")
    g1, g2 = parse_query("kafka_(honkai:_star_rail) solo -rating:e score:>10 | kafka_(honkai:_star_rail) solo_focus id:<900 order:score", fam)
    assert g1.include == ("kafka_(honkai:_star_rail)", "solo")
    assert g1.ratings_out == {"explicit"} and g1.min_score == 11 and g1.remote_only == ()
    assert g2.include == ("kafka_(honkai:_star_rail)", "solo_focus")
    assert g2.remote_only == ("id:<900",) and g2.score_sort
    with pytest.raises(QueryError, match="empty search group"):
        parse_query("a | ", fam)
    with pytest.raises(QueryError, match="unknown rating 'x'"):
        parse_query("a rating:x", fam)


def test_rating_words_follow_each_site():
    assert parse_query("a rating:s", family("danbooru"))[0].ratings_in == {"sensitive"}
    assert parse_query("a rating:s", family("e621"))[0].ratings_in == {"general"}  # e621's s is safe
    assert parse_query("a rating:safe", family("safebooru"))[0].ratings_in == {"general"}
    assert criteria_for(family("danbooru"), ratings=["sfw"]).ratings == {"general", "sensitive"}


# -- planning within the site's limits ---------------------------------------------------------
def test_plan_respects_danbooru_two_tag_limit_and_filters_the_rest_locally():
    fam = family("danbooru")
    group = parse_query("char solo smile -comic", fam)[0]
    crit = criteria_for(fam, blacklist=["monochrome"], ratings=["g", "s"], min_score=20)
    top = plan_search(group, crit, fam, tag_limit=2, want_score_order=True)
    assert top.terms == ("char", "order:score", "rating:g,s")  # rating: is free on Danbooru
    assert top.remote_sort and top.local == ("solo", "smile")
    full = plan_search(group, crit, fam, tag_limit=2, want_score_order=False)
    assert full.terms == ("char", "solo", "rating:g,s") and not full.remote_sort
    assert full.local == ("smile",)
    gold = plan_search(group, crit, fam, tag_limit=None, want_score_order=False)
    assert gold.terms == ("char", "solo", "smile", "rating:g,s", "score:>=20", "-comic", "-monochrome")
    assert gold.local == ()


def test_plan_refuses_site_only_terms_that_do_not_fit():
    fam = family("danbooru")
    group = parse_query("a b fav:someone user:x", fam)[0]
    with pytest.raises(QueryError, match="cannot take 'user:x'"):
        plan_search(group, criteria_for(fam), fam, tag_limit=1, want_score_order=False)


def test_gelbooru_plan_sends_everything_and_sorts_remotely():
    fam = family("gelbooru")
    group = parse_query("a b", fam)[0]
    plan = plan_search(group, criteria_for(fam, ratings=["general"]), fam, tag_limit=None, want_score_order=True)
    assert plan.terms == ("a", "sort:score:desc", "b", "rating:general")


# -- local checks and order ------------------------------------------------------------------
def test_reject_reasons():
    fam = family("danbooru")
    group = parse_query("a b -c", fam)[0]
    crit = criteria_for(fam, blacklist=["comic"], ratings=["g"], min_score=5, min_area=500 * 500,
                        formats=["jpg", "png"])
    plan = plan_search(group, crit, fam, tag_limit=1, want_score_order=False)
    ok = post(1, ["a", "b"], score=9)
    assert reject_reason(ok, group, plan, crit) is None
    cases = {
        "missing tag b": post(2, ["a"], score=9),
        "excluded tag c": post(3, ["a", "b", "c"], score=9),
        "blacklisted tag comic": post(4, ["a", "b", "comic"], score=9),
        "rating sensitive": post(5, ["a", "b"], score=9, rating="sensitive"),
        "score below minimum": post(6, ["a", "b"], score=4),
        "image too small": post(7, ["a", "b"], score=9, w=300, h=300),
        "format webm": post(8, ["a", "b"], score=9, ext="webm"),
    }
    for reason, p in cases.items():
        assert reject_reason(p, group, plan, crit) == reason


def test_select_orders_by_score_then_newest_and_takes_top():
    posts = [post(1, score=5), post(2, score=9), post(3, score=5), post(4, score=1)]
    assert [p.id for p in select(posts, "score", 3)] == [2, 3, 1]
    assert [p.id for p in select(posts, "newest", None)] == [4, 3, 2, 1]
    assert [p.id for p in select(posts, "oldest", 2)] == [1, 2]


def test_fingerprint_is_stable_and_tracks_selection_options():
    a = fingerprint("danbooru", "https://x", "a  b | c", {"top": 5})
    assert a == fingerprint("danbooru", "https://x", "a b|c", {"top": 5})
    assert a != fingerprint("danbooru", "https://x", "a b | c", {"top": 6})


# -- paging ------------------------------------------------------------------------------------
class FakeSite:
    """A fetch function over ids 1..n that answers like the family asks (keyset or pid)."""

    def __init__(self, fam, n):
        self.fam, self.ids, self.calls = fam, list(range(n, 0, -1)), []

    def __call__(self, url, params):
        self.calls.append(dict(params))
        ids = self.ids
        for t in params["tags"].split():
            if t.startswith("id:<"):
                ids = [i for i in ids if i < int(t[4:])]
        limit = int(params["limit"])
        page = params.get("page", "")
        if page.startswith("b"):
            chosen = [i for i in ids if i < int(page[1:])][:limit]
        else:
            n = int(params["pid"]) if "pid" in params else int(page or 1) - 1
            chosen = ids[n * limit:(n + 1) * limit]
        raws = [{"id": i, "tags": "a", "file_url": f"http://h/{i}.jpg", "md5": "0" * 32} for i in chosen]
        return raws if self.fam.spec.family.__name__ == "Danbooru" else {"@attributes": {}, "post": raws}


def test_keyset_walk_uses_before_id_until_a_short_page():
    fam = family("danbooru")
    site = FakeSite(fam, 7)
    pages = list(walk_pages(fam, ["a"], site, page_size=3, by_id=True))
    assert [[p.id for p in pg] for pg in pages] == [[7, 6, 5], [4, 3, 2], [1]]
    assert [c.get("page") for c in site.calls] == [None, "b5", "b2"]


def test_numbered_walk_continues_past_the_page_cap_with_id_below():
    from lorakiln.sources.gelbooru import Gelbooru

    fam = Gelbooru(SiteSpec("tiny", Gelbooru, "http://h", page_size=2, max_page=2))
    site = FakeSite(fam, 9)
    ids = [p.id for pg in walk_pages(fam, ["a"], site, page_size=2, by_id=True) for p in pg]
    assert ids == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert [(c["pid"], c["tags"]) for c in site.calls][:4] == [("0", "a"), ("1", "a"), ("0", "a id:<6"), ("1", "a id:<6")]
    notes = []
    capped = list(walk_pages(fam, ["a"], FakeSite(fam, 9), page_size=2, by_id=False, on_note=notes.append))
    assert sum(len(p) for p in capped) == 4 and "page limit" in notes[0]


def test_cursor_params_per_family():
    d, g = family("danbooru"), family("gelbooru")
    assert d.posts_request(["a"], Cursor(before_id=10), 5)[1]["page"] == "b10"
    assert d.posts_request(["a"], Cursor(page=3), 5)[1]["page"] == "3"
    assert g.posts_request(["a"], Cursor(page=2), 5)[1]["pid"] == "2"


# -- rate limiting, retries, redaction -------------------------------------------------------------
def test_rate_limiter_spaces_requests_and_defers():
    now, slept = [0.0], []

    def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    lim = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        lim.acquire()
    assert slept == [0.5, 0.5, 0.5] and now[0] == pytest.approx(1.5)
    lim.defer(3.0)
    lim.acquire()
    assert now[0] == pytest.approx(4.5)


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.25") == 0.25
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 < retry_after_seconds(format_datetime(later, usegmt=True)) <= 31


def test_public_url_and_redact_remove_credentials():
    url = public_url("https://gelbooru.com/index.php?page=dapi", {"tags": "a b", "api_key": "S3CRET", "user_id": "42"})
    assert "S3CRET" not in url and "42" not in url and "tags=a+b" in url
    assert "S3CRET" not in public_url("https://alice:S3CRET@host/x?k=S3CRET", secrets=["S3CRET"])
    assert redact("GET /x?api_key=S3CRET failed", ["S3CRET"]) == "GET /x?api_key=*** failed"


# -- config and credentials ------------------------------------------------------------------------
def test_query_options_accept_the_forms_users_type():
    o = QueryOptions(blacklist="comic  monochrome", rating="g, s", min_area="768x768",
                     prepend_tags="kafka_hsr, 1girl", formats="JPG,png")
    assert o.blacklist == ["comic", "monochrome"] and o.rating == ["g", "s"]
    assert o.min_area == 768 * 768 and o.prepend_tags == ["kafka_hsr", "1girl"] and o.formats == ["jpg", "png"]
    with pytest.raises(ValidationError, match="unknown rating 'x'"):
        QueryOptions(rating="x")
    with pytest.raises(ValidationError):
        QueryOptions(sort="random")


def test_defaults_fill_only_what_a_query_leaves_unset():
    cfg = FetchConfig.model_validate({"defaults": {"min_area": "512x512", "top": 50},
                                      "queries": [{"site": "danbooru", "query": "a", "top": 10}]})
    q = cfg.effective(cfg.queries[0])
    assert q.top == 10 and q.min_area == 512 * 512
    assert SavedQuery(site="e621", query="a", top=3).options() == {"top": 3}


def test_credentials_env_wins_over_file_and_key_stays_hidden(tmp_path):
    (tmp_path / "credentials.toml").write_text('[danbooru]\nlogin = "filelogin"\napi_key = "FILEKEY123"\n'
                                               '[gelbooru]\nuser_id = "42"\napi_key = "GELKEY123"\n')
    env = {"KILN_CONFIG_DIR": str(tmp_path), "KILN_DANBOORU_API_KEY": "ENVKEY123"}
    d = load_credentials("danbooru", env)
    assert d.login == "filelogin" and d.key == "ENVKEY123"
    assert "ENVKEY123" not in repr(d) and "ENVKEY123" not in str(d.model_dump())
    g = load_credentials("gelbooru", env)
    assert (g.user_id, g.key) == ("42", "GELKEY123")
    assert load_credentials("e621", env).key is None


def test_bad_credentials_file_names_file_not_secret(tmp_path):
    (tmp_path / "credentials.toml").write_text('[danbooru]\napi_kee = "TYPOSECRET1"\n')
    with pytest.raises(ConfigError) as e:
        load_credentials("danbooru", {"KILN_CONFIG_DIR": str(tmp_path)})
    assert "credentials.toml" in str(e.value) and "api_kee" in str(e.value) and "TYPOSECRET1" not in str(e.value)
    (tmp_path / "credentials.toml").write_text('[danbooru\napi_key = "BROKENSECRET"\n')
    with pytest.raises(ConfigError) as e:
        load_credentials("danbooru", {"KILN_CONFIG_DIR": str(tmp_path)})
    assert "not valid TOML" in str(e.value) and "BROKENSECRET" not in str(e.value)


def test_base_url_with_credentials_is_refused():
    import pytest
    from pydantic import ValidationError

    from lorakiln.config.fetch import SavedQuery

    for url in ("https://alice:secret@danbooru.example", "https://gelbooru.example/?api_key=abc&user_id=1"):
        with pytest.raises(ValidationError, match="no credentials in the base URL"):
            SavedQuery(site="danbooru", query="a", base_url=url)
    assert SavedQuery(site="danbooru", query="a", base_url="http://127.0.0.1:8080/").base_url == "http://127.0.0.1:8080"
