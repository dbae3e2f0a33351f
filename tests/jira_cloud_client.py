"""A small Jira Cloud REST client, written from Atlassian's REST API v3 documentation.

It deliberately knows nothing of the emulator: it is what an integration written for the live
service would do (Basic `email:api_token`, `nextPageToken` paging until `isLast`, status changes
through transitions, `startAt` paging of changelogs), so the tests that drive the emulator with
it show that such integrations work against the emulator unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx

API = "/rest/api/3"


class JiraError(Exception):
    """Jira answered with an error status; `body` is its `{errorMessages, errors}` document."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text
        super().__init__(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {self.body}"
        )


def adf(text: str) -> dict[str, Any]:
    """`text` as an Atlassian Document Format document of one paragraph."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


class JiraCloudClient:
    """Jira Cloud platform REST API v3 over one `httpx.Client`."""

    def __init__(self, base_url: str, email: str, api_token: str, *, timeout: float = 10) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            auth=httpx.BasicAuth(email, api_token),
            headers={"Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> JiraCloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, API + path, **kwargs)
        if response.is_error:
            raise JiraError(response)
        return response

    def myself(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/myself").json()
        return result

    def search_page(
        self,
        jql: str,
        *,
        fields: Sequence[str] = ("summary", "status", "updated"),
        max_results: int = 50,
        next_page_token: str | None = None,
        expand: str | None = None,
    ) -> dict[str, Any]:
        """One page of `POST /search/jql` (the enhanced search that replaced `/search`)."""
        body: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": max_results}
        if next_page_token is not None:
            body["nextPageToken"] = next_page_token
        if expand is not None:
            body["expand"] = expand
        page: dict[str, Any] = self._call("POST", "/search/jql", json=body).json()
        return page

    def search(
        self,
        jql: str,
        *,
        fields: Sequence[str] = ("summary", "status", "updated"),
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """Every issue `jql` matches, following `nextPageToken` until the last page.

        The docs say a page may hold fewer than `maxResults` issues even when more follow, so
        only `isLast` / a missing token end the loop, never a short page.
        """
        token: str | None = None
        while True:
            page = self.search_page(
                jql, fields=fields, max_results=page_size, next_page_token=token
            )
            yield from page["issues"]
            token = page.get("nextPageToken")
            if page.get("isLast", token is None) or token is None:
                return

    def search_get(
        self, jql: str, *, fields: str, max_results: int, next_page_token: str | None = None
    ) -> dict[str, Any]:
        """One page of `GET /search/jql`, fields as a comma-separated list."""
        params: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": max_results}
        if next_page_token is not None:
            params["nextPageToken"] = next_page_token
        page: dict[str, Any] = self._call("GET", "/search/jql", params=params).json()
        return page

    def create_issue(
        self,
        project_key: str,
        summary: str,
        *,
        issue_type: str = "Task",
        description: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body_fields: dict[str, Any] = {
            "project": {"key": project_key},
            "summary": summary,
            "issuetype": {"name": issue_type},
            **fields,
        }
        if description is not None:
            body_fields["description"] = adf(description)
        created: dict[str, Any] = self._call("POST", "/issue", json={"fields": body_fields}).json()
        return created

    def get_issue(
        self, key: str, *, fields: str | None = None, expand: str | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in (("fields", fields), ("expand", expand)) if v is not None}
        issue: dict[str, Any] = self._call("GET", f"/issue/{key}", params=params).json()
        return issue

    def edit_issue(
        self,
        key: str,
        *,
        fields: dict[str, Any] | None = None,
        update: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = fields
        if update:
            body["update"] = update
        self._call("PUT", f"/issue/{key}", json=body)

    def delete_issue(self, key: str) -> None:
        self._call("DELETE", f"/issue/{key}")

    def transitions(self, key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", f"/issue/{key}/transitions").json()[
            "transitions"
        ]
        return found

    def transition_to(self, key: str, status_name: str) -> None:
        """Move `key` to `status_name` through whichever transition leads there."""
        for transition in self.transitions(key):
            if transition["to"]["name"] == status_name:
                self._call(
                    "POST",
                    f"/issue/{key}/transitions",
                    json={"transition": {"id": transition["id"]}},
                )
                return
        raise LookupError(f"{key}: no transition leads to {status_name!r}")

    def changelog(self, key: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every changelog entry of `key`, oldest first, following `startAt` paging."""
        start = 0
        while True:
            page = self._call(
                "GET", f"/issue/{key}/changelog", params={"startAt": start, "maxResults": page_size}
            ).json()
            yield from page["values"]
            start += len(page["values"])
            if page.get("isLast", True) or not page["values"]:
                return
