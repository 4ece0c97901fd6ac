"""The reviewer page and the overview page of ``labelwise serve --review-db``, in a real
browser: Debian's Chromium through Playwright, two browser contexts as two reviewers working
one queue by keyboard, against a real uvicorn on 127.0.0.1 and a SQLite review database.

The database also holds a model version of 30,000 labels (written directly, as the ingest of
a big taxonomy would leave it), so that adding a label by typing searches 30,000 names.
Skips (with the reason) only where Chromium, Playwright or the [review] extra is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

import sqlalchemy as sa  # noqa: E402

from labelwise.review import loop, open_db  # noqa: E402
from labelwise.review.models import Item, Lease, ModelVersion, Review, utcnow  # noqa: E402
from labelwise.serve import ServeSettings, create_app  # noqa: E402
from review_support import TARGET, dataset, pipeline_dir  # noqa: E402
from serve_support import TOKEN, live_server, workdir  # noqa: E402
from test_serve_page import CHROMIUM_ARGS, TIMEOUT_MS, _chromium  # noqa: E402

N_ITEMS = 8
N_BIG = 30_000
SHOTS = os.environ.get("LABELWISE_PAGE_SHOTS")


def _big_names() -> list[str]:
    return [f"{'zebra' if j % 1000 == 7 else 'topic'}-{j:05d}" for j in range(N_BIG)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from labelwise.pipeline import load_any

    url = str(tmp_path_factory.mktemp("review-page") / "review.db")
    with open_db(url, create=True) as db:
        counts = loop.ingest(db, load_any(pipeline_dir()), pipeline_dir(),
                             dataset(N_ITEMS, 3, "p"), precision=TARGET, audit_rate=1.0)
        assert counts["queued"] + counts["audit"] == N_ITEMS
        with db.engine.begin() as conn:
            conn.execute(sa.insert(ModelVersion).values(
                name="taxonomy", version="0" * 64, path="/nowhere", labels=_big_names(),
                threshold=None, target=TARGET, created_at=utcnow()))
    settings = ServeSettings(models={"colors": str(pipeline_dir())},
                             token_file=str(workdir() / "token"), extra={"review_db": url},
                             batch_wait_ms=0)
    with live_server(create_app(settings, load_in_background=False), timeout=120) as base:
        yield base, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Reviewer:
    """One browser context (its own storage) with the reviewer page open."""

    def __init__(self, browser, base: str, name: str) -> None:
        self.name = name
        self.context = browser.new_context(viewport={"width": 1000, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # the browser logs each non-2xx answer; the 401 is what the token check asks for
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     and "status of 401" not in m.text else None)
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.goto(base + "/review")
        self.page.wait_for_function("document.querySelector('#queue-progress')"
                                    ".textContent.startsWith('Queue:')")

    def start(self, token: str | None) -> None:
        pg = self.page
        pg.fill("#reviewer", self.name)
        pg.fill("#token", token or "")
        pg.focus("#reviewer")
        pg.keyboard.press("Enter")  # submits the form: the first item

    def current(self) -> str | None:
        """The id of the item shown (None when the queue is empty), once the page settled."""
        self.page.wait_for_function("!document.querySelector('#item').hidden || "
                                    "!document.querySelector('#empty').hidden")
        if self.page.is_visible("#empty"):
            return None
        return self.page.text_content("#item-title").removeprefix("Item ")

    def toggles(self) -> dict[str, bool]:
        return self.page.eval_on_selector_all(
            "#suggestions button.toggle", "bs => Object.fromEntries(bs.map(b => "
            "[b.dataset.label, b.getAttribute('aria-pressed') === 'true']))")

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def submit(self) -> tuple[str, list[str], list[str]]:
        """Enter: the item shown is submitted; returns (id, accepted, added) as shown."""
        item, on = self.current(), self.toggles()
        added = self.page.eval_on_selector_all("#added li", "ls => ls.map(l => l.dataset.label)")
        self.press("Enter")
        self.page.wait_for_function(f"document.querySelector('#status').textContent === "
                                    f"'Submitted item {item}.'")
        return item, sorted(k for k, v in on.items() if v), added

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"{self.name}'s page logged errors: {self.errors}"


def _reviews(url) -> dict[str, tuple[str, list[str], list[str], list[str]]]:
    with open_db(url) as db, db.engine.connect() as conn:
        return {i: (r, sorted(a), sorted(rj), ad) for i, r, a, rj, ad in conn.execute(
            sa.select(Item.id, Review.reviewer, Review.accepted, Review.rejected, Review.added)
            .join(Review, Review.item_pk == Item.pk))}


def test_two_reviewers_work_one_queue_by_keyboard(served, browser):
    base, url = served
    ann, bob = Reviewer(browser, base, "ann"), Reviewer(browser, base, "bob")
    try:
        # without the token the server refuses the lease, and the page says why
        ann.start(None)
        ann.page.wait_for_selector("#error:not([hidden])")
        assert "401" in ann.page.text_content("#error")
        ann.start(TOKEN)
        bob.start(TOKEN)
        a, b = ann.current(), bob.current()
        assert a and b and a != b  # two reviewers never hold one item
        # every control has a label naming it
        assert ann.page.evaluate("""() => [...document.querySelectorAll('input, select')]
            .filter(e => !(e.labels && e.labels.length)).map(e => e.id)""") == []
        decided: dict[str, tuple[str, list[str], list[str]]] = {}

        # ann: digit 1 flips the first suggestion, Enter submits
        before = ann.toggles()
        ann.press("1")
        first = next(iter(before))
        assert ann.toggles()[first] is not before[first]
        item, acc, added = ann.submit()
        decided[item] = ("ann", acc, added)

        # ann adds a label by typing part of its name among 30,000 (/ jumps to the box)
        ann.current()
        ann.press("/")
        ann.page.keyboard.type("zebra-0700")
        ann.page.wait_for_selector("#add-options li[data-label='zebra-07007']")
        assert ann.page.locator("#add-options li").count() == 1
        assert "1 label match" in ann.page.text_content("#add-hint")
        ann.shot("reviewer-add-label")
        ann.press("Enter")
        ann.page.wait_for_selector("#added li[data-label='zebra-07007']")
        ann.press("Escape")  # back to the item: shortcuts work again
        item, acc, added = ann.submit()
        assert added == ["zebra-07007"]
        decided[item] = ("ann", acc, added)

        # bob submits, then U undoes it: the item is back as he left it, then decided anew
        item, acc, added = bob.submit()
        after = bob.current()
        assert after != item
        bob.press("u")
        bob.page.wait_for_function(f"document.querySelector('#item-title').textContent === "
                                   f"'Item {item}'")
        assert sorted(k for k, v in bob.toggles().items() if v) == acc
        assert item not in _reviews(url)  # the review is removed
        with open_db(url) as db, db.engine.connect() as conn:
            holder = conn.execute(sa.select(Lease.reviewer).join(Item, Item.pk == Lease.item_pk)
                                  .where(Item.id == item)).scalar()
        assert holder == "bob"
        bob.press("2")
        item2, acc2, added2 = bob.submit()
        assert item2 == item and acc2 != acc
        decided[item] = ("bob", acc2, added2)
        assert bob.current() == after  # the item he held before the undo

        # S skips: another item (the skipped one goes back to the queue)
        skipped = ann.current()
        ann.press("s")
        ann.page.wait_for_function(f"document.querySelector('#status').textContent === "
                                   f"'Skipped item {skipped}.'")
        assert ann.current() not in (skipped, None)
        ann.shot("reviewer")

        # both work the rest of the queue with Enter until it is empty
        active = [ann, bob]
        while active:
            for r in list(active):
                if r.current() is None:
                    active.remove(r)
                    continue
                item, acc, added = r.submit()
                assert item not in decided, f"{item} decided twice"
                decided[item] = (r.name, acc, added)
        assert "empty" in ann.page.text_content("#empty")
        mine = {r.name: sum(1 for v in decided.values() if v[0] == r.name) for r in (ann, bob)}
        for r in (ann, bob):
            assert r.page.text_content("#my-progress").startswith(
                f"You: {mine[r.name]} submitted this session · ")
            assert "items per hour" in r.page.text_content("#my-progress")

        # the database: every item decided exactly once, as the pages showed it
        got = _reviews(url)
        assert len(decided) == N_ITEMS and set(got) == set(decided)
        for item, (who, acc, added) in decided.items():
            assert got[item][0] == who and got[item][1] == acc and got[item][3] == added, item
        ann.page.click("#again")
        ann.page.wait_for_function("document.querySelector('#queue-progress').textContent"
                                   ".startsWith('Queue: 0 waiting')")
        assert f"{N_ITEMS} of {N_ITEMS} items decided ({N_ITEMS} reviewed" in \
            ann.page.text_content("#queue-progress")
    finally:
        ann.close()
        bob.close()


def test_overview_shows_the_status_figures(served, browser):
    base, url = served
    with open_db(url) as db:
        st = loop.status(db)
    assert st["reviewed"] == N_ITEMS  # after the reviewers' test
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(base + "/review/overview")
        pg.wait_for_selector("#figures [data-figure=items]")
        fig = dict(pg.eval_on_selector_all("#figures .figure", "fs => fs.map(f => "
                                           "[f.dataset.figure, f.querySelector('dd').textContent])"))
        assert fig == {"items": str(N_ITEMS), "queued": "0", "audits": "0", "auto": "0",
                       "reviewed": str(N_ITEMS), "target": f"{100 * TARGET:.1f} %"}
        rows = pg.eval_on_selector_all("#label-table tbody tr", """trs => trs.map(t => [
            t.dataset.label, t.classList.contains('paused'),
            t.querySelector('td.state').textContent, t.querySelectorAll('td')[4].textContent,
            t.querySelector('td.precision').textContent])""")
        want = {r["label"]: r for r in st["labels"]}
        assert {r[0] for r in rows} == set(want)
        assert any(r[1] for r in rows), "the reviewers' rejections pause some label"
        for label, paused, state, audited, precision in rows:
            w = want[label]
            assert paused is w["paused"] and state == ("paused" if w["paused"] else "on")
            assert audited == (f"{w['audited_correct']}/{w['audited']}" if w["audited"] else "0")
            if w["audited"]:
                assert precision == f"{100 * w['audited_precision']:.1f} %"
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)  # paused first
        if SHOTS:
            pg.screenshot(path=str(Path(SHOTS) / "overview.png"), full_page=True)
    finally:
        ctx.close()
