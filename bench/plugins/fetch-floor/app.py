"""The least a Python sync plugin does with a Jira search, for `bench/sync.py`'s floor.

`fetch` pages `/search/jql` as jira-sync does (the next page is fetched while this one is
parsed) and parses every page; with `write`, each issue also becomes a task carrying only its
summary and a link, written by the host while the next page is parsed. Everything jira-sync
does beyond this (mapping, hashing, merging, its run state) is its own cost.
"""

import json

from corral_sdk import Plugin, http
from wit_world.imports import config, tasks

plugin = Plugin()
HEADERS = [("Accept", "application/json"), ("Content-Type", "application/json")]


def _search(settings, token):
    body = {"jql": settings["jql"], "fields": settings["fields"]}
    body["maxResults"] = settings.get("page_size", 100)
    if token:
        body["nextPageToken"] = token
    url = settings["base_url"].rstrip("/") + "/rest/api/3/search/jql"
    return http.start("POST", url, headers=HEADERS, body=json.dumps(body).encode())


def _tasks_of(issues):
    return [
        {
            "id": f"floor-{issue['id']}",
            "title": issue["fields"]["summary"],
            "link": {"system": "floor", "external_key": str(issue["id"]), "snapshot": {}},
        }
        for issue in issues
    ]


@plugin.command("fetch")
def fetch(args: dict) -> dict:
    """Every page of the configured search: parsed, and written as tasks if `write`."""
    settings = json.loads(config.get_all())
    pending, writing, count = _search(settings, None), None, 0
    while pending is not None:
        response = pending.result()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.text()[:200]}")
        page = json.loads(response.text())
        token = None if page.get("isLast") else page.get("nextPageToken")
        pending = _search(settings, token) if token else None
        count += len(page["issues"])
        if args.get("write"):
            if writing is not None:
                tasks.finish_put_many(writing)  # its answer is not parsed, as in jira-sync
            items = json.dumps(_tasks_of(page["issues"]), separators=(",", ":"))
            writing = tasks.start_put_many(items)
    if writing is not None:
        tasks.finish_put_many(writing)
    return {"issues": count}


Handler = plugin.handler()
