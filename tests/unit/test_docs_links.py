"""Docs that link: every page is in the docs index, every relative link points at a file that
exists, and the package's project URLs (what Airflow's Providers page links to) name real pages
of this repository."""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if p.name != "README.md")
# [text](target) outside code: targets without a scheme are files of the repository
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def _project_urls() -> dict[str, str]:
    entries = metadata("airflow-backfill-provider").get_all("Project-URL") or []
    return {name.strip(): url.strip() for name, url in (e.split(",", 1) for e in entries)}


@pytest.mark.parametrize("index", ["README.md", "docs/README.md"])
def test_every_docs_page_is_in_the_index(index):
    linked = {(ROOT / index).parent.joinpath(t.split("#")[0]).resolve() for t in _links(ROOT / index)}
    missing = [p.name for p in PAGES if p.resolve() not in linked]
    assert not missing, f"{index} does not link {missing}"


@pytest.mark.parametrize("page", [ROOT / "README.md", DOCS / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to files that do not exist: {broken}"


def test_project_urls_name_pages_of_this_repository():
    urls = _project_urls()
    assert set(urls) >= {"Documentation", "Source", "Changelog"}, urls
    source = urls["Source"]
    assert source.startswith("https://github.com/"), source
    for name in ("Documentation", "Changelog"):
        prefix = f"{source}/blob/main/"
        assert urls[name].startswith(prefix), f"{name} URL {urls[name]} is not a page of {source}"
        path = urls[name][len(prefix) :].split("#")[0]
        assert (ROOT / path).is_file(), f"{name} URL {urls[name]} names {path}, which does not exist"


def test_providers_page_links_the_documentation_url():
    """Airflow 3.3 fills a provider's ``documentation-url`` (the Providers page's link) from the
    distribution's "Documentation" project URL, not from get_provider_info()."""
    from airflow.providers_manager import ProvidersManager

    provider = ProvidersManager().providers["airflow-backfill-provider"]
    assert provider.data["documentation-url"] == _project_urls()["Documentation"]
