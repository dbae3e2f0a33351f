"""Status changes through the workflow: Jira sets status only by transitions, and a transition
leads only from the issue's current status, so reaching a status may take several.

The workflow graph is learnt as the sync goes (each `GET transitions` tells the edges out of
one status) and kept in kv; a breadth-first search over it finds the shortest known path.
When the target is not reachable through known edges, the walk steps into statuses whose edges
are still unknown; if that ends nowhere, the issue goes back where it was and `Unreachable`
reports it.
"""

from collections import deque

from corral_sdk import kv

MAX_STEPS = 12


class Unreachable(Exception):
    """No path in the workflow leads from the issue's status to the wanted one."""


def _path(graph, start, goal, unexplored=False):
    """Transition ids from `start` to `goal` (or, with `unexplored`, to the nearest status whose
    edges are unknown), by BFS over known edges; None if there is none."""
    seen, queue = {start}, deque([(start, [])])
    while queue:
        status, path = queue.popleft()
        for transition_id, target in graph.get(status, []):
            if target in seen:
                continue
            found = [*path, transition_id]
            if target == goal or (unexplored and target not in graph):
                return found, target
            seen.add(target)
            queue.append((target, found))
    return None, None


def _learn(jira, key, graph, status):
    edges = [(t["id"], t["to"]["name"]) for t in jira.transitions(key)]
    graph[status] = edges
    return edges


def move(jira, key, current_raw, field, target_local):
    """Transition issue `key` until its status maps to `target_local`."""
    graph = {k: [tuple(e) for e in v] for k, v in kv.get("workflow", {}).items()}
    status = current_raw.get("name") if isinstance(current_raw, dict) else current_raw
    origin = status
    learnt = False
    try:
        for _ in range(MAX_STEPS):
            if status not in graph:
                _learn(jira, key, graph, status)
                learnt = True
            names = {target for edges in graph.values() for _, target in edges} | {status}
            goal = field.values.to_remote(target_local, names)
            if status == goal:
                return
            path, _ = _path(graph, status, goal)
            if path is None:
                path, _ = _path(graph, status, goal, unexplored=True)
            if path is None:
                break
            edges = dict(graph[status])
            jira.transition(key, path[0])
            status = edges[path[0]]
        back, _ = _path(graph, status, origin) if status != origin else ([], None)
        for transition_id in back or ():
            jira.transition(key, transition_id)
        raise Unreachable(
            f'no transition path from status "{origin}" to "{goal}" in the workflow of {key}'
        )
    finally:
        if learnt:
            kv.set("workflow", graph)
