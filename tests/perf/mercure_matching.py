"""What local matching costs a gateway: one Mercure update against 10,000 subscribers holding
URI-template selectors (docs/design/mercure.md, "Matching cost").

Runs the real per-subscription filter (MercureView.admits, gateway.mercure.stream) on real hub
events, in-process, one core, timed in CPU seconds of this process (less noisy than wall time on a
shared machine). Three populations of 10,000 subscriptions:

* distinct: every subscriber its own template (``.../users/{n}/books/{id}``, n = 0..9999), so
  10,000 compiled patterns, the worst case for a per-subscriber filter;
* shared: all the same template (one compiled pattern, shared through the compile cache);
* mixed: each subscriber two selectors (its own template and an exact topic), private updates.

    .venv/bin/python -m tests.perf.mercure_matching [--subscribers 10000] [--updates 200]
"""

from __future__ import annotations

import argparse
import time

from gateway.events import Event
from gateway.mercure.auth import MercureGrant, Right
from gateway.mercure.selectors import compile_matcher
from gateway.mercure.stream import LOG, MercureView
from gateway.mercure.update import Update, encode_update

BASE = "https://hub.test/.well-known/mercure"
ROOT = "https://example.com/users"


def _views(count: int, population: str) -> tuple[list[MercureView], float]:
    started = time.process_time()
    views = []
    for n in range(count):
        template = f"{ROOT}/{n if population != 'shared' else 'x'}/books/{{id}}"
        selectors = [compile_matcher("template", template, BASE)]
        grant = MercureGrant()
        if population == "mixed":
            selectors.append(compile_matcher("exact", f"{ROOT}/{n}/profile", BASE))
            right = Right("template", template, selectors[0])
            grant = MercureGrant(subscribe=(right,), authenticated=True)
        views.append(MercureView(tuple(selectors), grant))
    return views, time.process_time() - started


def _events(updates: int, population: str) -> list[Event]:
    events = []
    for seq in range(updates):
        owner = "x" if population == "shared" else seq * 37 % 10_000
        topics = (f"{ROOT}/{owner}/books/{seq}", f"https://example.com/books/{seq}")
        update = Update(f"urn:seq:{seq}", topics, "{}", private=population == "mixed")
        events.append(Event(LOG, f"{seq + 1}-0", (seq + 1, 0), "", encode_update(update)))
    return events


def measure(subscribers: int, updates: int, population: str) -> None:
    views, compile_s = _views(subscribers, population)
    events = _events(updates, population)
    delivered = 0
    started = time.process_time()
    for event in events:
        for view in views:
            if view.admits(event):
                delivered += 1
    elapsed = time.process_time() - started
    per_update = elapsed / updates
    print(
        f"{population:9s} {subscribers} subscribers: build+compile {compile_s * 1000:7.1f} ms; "
        f"{per_update * 1000:6.2f} ms per update ({per_update / subscribers * 1e9:5.0f} ns per "
        f"subscriber check); {1 / per_update:6.0f} updates/s per core; {delivered} delivered"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    for population in ("distinct", "shared", "mixed"):
        compile_matcher.cache_clear()
        measure(args.subscribers, args.updates, population)


if __name__ == "__main__":
    main()
