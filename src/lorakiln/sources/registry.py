"""The sites `kiln fetch` knows, one line each. Any of them takes `--base-url` for mirrors."""

from __future__ import annotations

from lorakiln.core.registry import Registry
from lorakiln.sources.base import SiteSpec
from lorakiln.sources.danbooru import Danbooru
from lorakiln.sources.e621 import E621
from lorakiln.sources.gelbooru import Gelbooru

SITES: Registry[SiteSpec] = Registry("site")


def _add(spec: SiteSpec) -> None:
    SITES.register(spec.name, spec)


_add(SiteSpec("danbooru", Danbooru, "https://danbooru.donmai.us", rate=1.0, page_size=200, max_page=1000,
              tag_limit=2, about="Danbooru and compatible hosts; 2 search tags for anonymous/Member accounts"))
_add(SiteSpec("gelbooru", Gelbooru, "https://gelbooru.com", rate=1.0, page_size=100, max_page=200,
              about="Gelbooru; needs api_key + user_id since 2025"))
_add(SiteSpec("safebooru", Gelbooru, "https://safebooru.org", rate=1.0, page_size=1000, max_page=200,
              about="safebooru.org (Gelbooru 0.2 API)"))
_add(SiteSpec("e621", E621, "https://e621.net", rate=1.0, max_rate=2.0, page_size=320, max_page=750,
              tag_limit=40, needs_username=True, about="e621; User-Agent names your username; <= 2 req/s"))
_add(SiteSpec("e926", E621, "https://e926.net", rate=1.0, max_rate=2.0, page_size=320, max_page=750,
              tag_limit=40, needs_username=True, credentials="e621", about="e926 (safe e621)"))
