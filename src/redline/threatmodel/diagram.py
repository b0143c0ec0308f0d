"""The data-flow diagram of a threat model, as Mermaid text and as an inline SVG.

The graph reads left to right: where data and models come from, training, the model, the
serving (or on-device, or agent) side, and the people and world outside. Each applicable
mode is drawn where it enters: on an edge (poisoned records on the way into training,
queries on the way in, answers on the way out) or on a node. The SVG is laid out here, in
plain arithmetic, so the HTML report needs no JavaScript and nothing from the network.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
from typing import TYPE_CHECKING

from ..util.palette import palette
from ..triage.context import source_influence

if TYPE_CHECKING:
    from .assess import ThreatModel

__all__ = ["COLUMNS", "Diagram", "Edge", "Node", "build_diagram"]

COLUMNS = ("Sources", "Training", "Model", "Serving", "Users and world")

_SOURCE_TITLES = {
    "internal": "Internal data",
    "curated": "Curated data",
    "synthetic": "Synthetic data",
    "simulation": "Simulator",
    "partners": "Partner data",
    "purchased": "Purchased data",
    "customers": "Customer data",
    "user_feedback": "User feedback",
    "user_uploads": "User uploads",
    "scraped": "Scraped web data",
    "public_dataset": "Public data set",
    "crowdsourced": "Crowdsourced labels",
}
_TRUST = {
    "none": "nobody",
    "internal": "insiders only",
    "partners": "partners can change it",
    "users": "users can change it",
    "public": "anyone can change it",
}
_UNTRUSTED = ("partners", "users", "public")
_SENSORS = {"image": "cameras", "video": "cameras", "audio": "microphones", "multimodal": "several sensors"}
_FORMATS = {
    "pytorch": "PyTorch file",
    "torchscript": "TorchScript file",
    "onnx": "ONNX file",
    "safetensors": "safetensors file",
    "skops": "skops file",
    "pickle": "pickle file",
    "joblib": "joblib file",
    "keras": "Keras file",
    "tensorflow": "TensorFlow SavedModel",
    "other": "format not stated",
}


@dataclasses.dataclass
class Node:
    id: str
    title: str
    subtitle: str
    column: int
    codes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Edge:
    src: str
    dst: str
    label: str
    codes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Diagram:
    nodes: list[Node]
    edges: list[Edge]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def mermaid(self) -> str:
        """Mermaid ``flowchart LR`` text; threats appear in node and edge labels."""
        lines = ["flowchart LR"]
        for n in self.nodes:
            label = f"{_mermaid_text(n.title)}<br/>{_mermaid_text(n.subtitle)}"
            if n.codes:
                label += f"<br/>threats: {', '.join(n.codes)}"
            lines.append(f'  {n.id}["{label}"]')
        column = {n.id: n.column for n in self.nodes}
        for e in self.edges:
            text = _mermaid_text(e.label + (f": {', '.join(e.codes)}" if e.codes else ""))
            arrow = "-.->" if column[e.src] > column[e.dst] + 1 else "-->"
            lines.append(f'  {e.src} {arrow}|"{text}"| {e.dst}')
        return "\n".join(lines) + "\n"

    def svg(self) -> str:
        return _render_svg(self)


def build_diagram(model: ThreatModel) -> Diagram:
    system = model.system
    f = system.environment
    nodes: list[Node] = []
    edges: list[Edge] = []
    anchors: dict[str, list[tuple[str, object]]] = {}

    def add_node(node: Node) -> Node:
        nodes.append(node)
        return node

    def add_edge(edge: Edge) -> Edge:
        edges.append(edge)
        return edge

    # Sources of data and of the model itself.
    sources = list(system.get("training.sources") or [])
    trains = sources != ["none"]
    source_nodes = []
    if trains:
        for kind in sources or [None]:
            if kind is None:
                level = f["training_influence"]
                source_nodes.append(add_node(Node("data", "Training data", f"sources not stated; {_TRUST[level]}", 0)))
            else:
                level = source_influence(kind)
                source_nodes.append(add_node(Node(f"src_{kind}", _SOURCE_TITLES[kind], _TRUST[level], 0)))
    origin = None
    if f["model_source"] == "public_zoo":
        origin = add_node(Node("zoo", "Public model zoo", "pre-trained model", 0))

    training = None
    if trains:
        who = {
            "in_house": "in house",
            "public_zoo": "fine-tuning in house",
            "outsourced": "by a contractor",
            "mlaas": "by an ML provider",
        }[f["model_source"]]
        title = "RL training" if f["reinforcement_learning"] else "Training"
        training = add_node(Node("training", title, who, 1))
    model_node = add_node(Node("model", "Model", _FORMATS[f["model_format"]], 2))
    deps = add_node(Node("deps", "Libraries", "frameworks and decoders", 2))

    if f["reinforcement_learning"]:
        deployment = add_node(Node("deploy", "Agent", f"acts in a {f['agent_environment']} environment", 3))
    else:
        returns = str(f["outputs"]).replace("_", " ")
        title, subtitle = {
            "internet": ("Serving API (internet)", f"returns {returns}"),
            "internal": ("Internal service", f"returns {returns}"),
            "embedded": ("On-device inference", "no query interface"),
            "none": ("Batch scoring", "no query interface"),
        }[f["exposure"]]
        deployment = add_node(Node("deploy", title, subtitle, 3))

    # Edges inside the pipeline.
    for node in source_nodes:
        edge = add_edge(Edge(node.id, training.id, "records"))
        level = f["training_influence"] if node.id == "data" else source_influence(node.id[4:])
        anchors.setdefault("data_untrusted" if level in _UNTRUSTED else "data_trusted", []).append(("edge", edge))
    if origin is not None:
        edge = add_edge(Edge(origin.id, (training or model_node).id, "download"))
        anchors["model_origin"] = [("edge", edge)]
    if training is not None:
        edge = add_edge(Edge(training.id, model_node.id, "weights"))
        if f["model_source"] in ("outsourced", "mlaas"):
            anchors["model_origin"] = [("edge", edge)]
        anchors["training"] = [("node", training)]
    add_edge(Edge(model_node.id, deployment.id, "load"))
    anchors["dependencies"] = [("edge", add_edge(Edge(deps.id, deployment.id, "runs on")))]
    anchors["model"] = [("node", model_node)]
    anchors["deployment"] = [("node", deployment)]

    # The outside: clients (and attackers among them), the physical world, the environment.
    outsiders = f["queryable"] or f["attacker_control"] == "raw"
    clients = None
    if outsiders:
        who = ", ".join(c.replace("_", " ") for c in system.get("serving.clients") or []) or (
            "internet users"
            if f["exposure"] == "internet"
            else "insiders"
            if f["exposure"] == "internal"
            else "outsiders"
        )
        clients = add_node(Node("clients", "Clients and attackers", who, 4))
        anchors["inputs"] = [("edge", add_edge(Edge(clients.id, deployment.id, "inputs")))]
        if f["queryable"]:
            anchors["outputs"] = [("edge", add_edge(Edge(deployment.id, clients.id, "answers")))]
    if f["attacker_control"] == "physical":
        world = add_node(Node("world", "Physical world", f"seen through {_SENSORS.get(f['modality'], 'sensors')}", 4))
        anchors["physical"] = [("edge", add_edge(Edge(world.id, deployment.id, "sensed")))]
    if f["reinforcement_learning"]:
        env = add_node(Node("env", "Environment", f"{f['agent_environment']}", 4))
        anchors["environment"] = [("edge", add_edge(Edge(deployment.id, env.id, "actions")))]
        add_edge(Edge(env.id, deployment.id, "state, reward"))
    elif system.get("decisions.drives"):
        subtitle = (
            "safety-critical" if f["safety_critical"] else ("automated" if f["automated"] else "reviewed by people")
        )
        decisions = add_node(Node("decisions", "Decisions", subtitle, 4))
        add_edge(Edge(deployment.id, decisions.id, "drives"))
    if f["feedback_loop"] and training is not None:
        feedback_src = clients or deployment
        target = next((n for n in source_nodes if n.id == "src_user_feedback"), training)
        edge = add_edge(Edge(feedback_src.id, target.id, "feedback"))
        anchors.setdefault("data_untrusted", []).append(("edge", edge))

    # Poisoning enters on the edges of sources outsiders can change, or on all of them.
    anchors["data"] = anchors.get("data_untrusted") or anchors.get("data_trusted") or []

    for assessment in model.applicable:
        targets = next((anchors[loc] for loc in assessment.enters if anchors.get(loc)), anchors["deployment"])
        for _kind, item in targets:
            if assessment.code not in item.codes:
                item.codes.append(assessment.code)
    return Diagram(nodes, edges)


def _mermaid_text(text: str) -> str:
    """Keep a label inside Mermaid's quoted-string syntax whatever the description says."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    # a backtick run could close the ```mermaid fence around the diagram in threat-model.md
    for bad, good in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;"), ("`", "#96;")):
        cleaned = cleaned.replace(bad, good)
    return cleaned[:80]


# --- SVG -------------------------------------------------------------------------------------

_W, _H, _H_CODES = 170, 50, 16  # node box width and height, and the extra height of a threat line
_GAP_X, _GAP_Y, _MARGIN, _TOP = 150, 26, 16, 30
_CHAR = 6.3  # rough width of a 10.5px character, for label backgrounds


@dataclasses.dataclass
class _Label:
    x: float
    y: float
    lines: list[tuple[str, bool]]  # (text, is a threat line)
    gap: int  # which gap between columns it sits in (for collision avoidance)

    @property
    def height(self) -> float:
        return 13.0 * len(self.lines) + 2


def _render_svg(d: Diagram) -> str:
    heights = {n.id: _H + (_H_CODES if n.codes else 0) for n in d.nodes}
    column_of = {n.id: n.column for n in d.nodes}
    back = {id(e) for e in d.edges if column_of[e.src] > column_of[e.dst] + 1}
    # A long backward edge runs under the whole diagram, so its two ends must be the lowest
    # nodes of their columns or its vertical legs would cross other boxes.
    low_ends = {e.src for e in d.edges if id(e) in back} | {e.dst for e in d.edges if id(e) in back}
    columns: dict[int, list[Node]] = {}
    for n in d.nodes:
        columns.setdefault(n.column, []).append(n)
    for ns in columns.values():
        ns.sort(key=lambda n: n.id in low_ends)
    column_height = {c: sum(heights[n.id] for n in ns) + _GAP_Y * (len(ns) - 1) for c, ns in columns.items()}
    body = max(column_height.values())
    pos: dict[str, tuple[float, float]] = {}
    for c, ns in columns.items():
        y = _TOP + (body - column_height[c]) / 2
        for n in ns:
            pos[n.id] = (_MARGIN + c * (_W + _GAP_X), y)
            y += heights[n.id] + _GAP_Y
    low = _TOP + body + 26
    width = _MARGIN * 2 + len(COLUMNS) * _W + (len(COLUMNS) - 1) * _GAP_X
    height = (low + 26 if back else _TOP + body) + _MARGIN

    ports = _ports(d, pos, heights, column_of, back)
    # The shared report palette, so the diagram matches the page around it.
    ui, severity = palette()["ui"], palette()["severity"]
    threat, plain, faint = palette()["status"]["vulnerable"]["text"], severity["None"], ui["muted"]
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
            'role="img" aria-label="Data-flow diagram with the threats marked where they enter" '
            'font-family="Helvetica, Arial, sans-serif">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{faint}"/></marker></defs>'
        ),
    ]
    for c, name in enumerate(COLUMNS):
        x = _MARGIN + c * (_W + _GAP_X) + _W / 2
        out.append(
            f'<text x="{x:.0f}" y="16" text-anchor="middle" font-size="11" fill="{faint}" '
            f'letter-spacing="1">{_esc(name.upper())}</text>'
        )
    labels: list[_Label] = []
    for e in d.edges:
        (sx, sy), (tx, ty) = ports[(id(e), "src")], ports[(id(e), "dst")]
        lines = [(e.label, False)] + ([(" ".join(e.codes), True)] if e.codes else [])
        if id(e) in back:
            path = (
                f"M{sx:.1f},{sy:.1f} L{sx:.1f},{low - 8:.1f} Q{sx:.1f},{low:.1f} {sx - 8:.1f},{low:.1f} "
                f"L{tx + 8:.1f},{low:.1f} Q{tx:.1f},{low:.1f} {tx:.1f},{low - 8:.1f} L{tx:.1f},{ty:.1f}"
            )
            labels.append(_Label((sx + tx) / 2, low, lines, -1))
            dash = ' stroke-dasharray="5 4"'
        else:
            mid = (sx + tx) / 2
            path = f"M{sx:.1f},{sy:.1f} C{mid:.1f},{sy:.1f} {mid:.1f},{ty:.1f} {tx:.1f},{ty:.1f}"
            labels.append(_Label(mid, (sy + ty) / 2, lines, min(column_of[e.src], column_of[e.dst])))
            dash = ""
        stroke = threat if e.codes else plain
        out.append(
            f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/>'
        )
    for n in d.nodes:
        x, y = pos[n.id]
        border = threat if n.codes else plain
        cx = x + _W / 2
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_W}" height="{heights[n.id]}" rx="7" '
            f'fill="{ui["card"]}" stroke="{border}" stroke-width="1.4"/>'
        )
        out.append(
            f'<text x="{cx:.1f}" y="{y + 21:.1f}" text-anchor="middle" font-size="13" '
            f'font-weight="600" fill="{ui["text"]}">{_esc(_fit(n.title, 23))}</text>'
        )
        out.append(
            f'<text x="{cx:.1f}" y="{y + 38:.1f}" text-anchor="middle" font-size="10.5" '
            f'fill="{ui["muted"]}">{_esc(_fit(n.subtitle, 30))}</text>'
        )
        if n.codes:
            out.append(
                f'<text x="{cx:.1f}" y="{y + 56:.1f}" text-anchor="middle" font-size="10.5" '
                f'font-weight="700" fill="{threat}">{_esc(_fit(" ".join(n.codes), 30))}</text>'
            )
    _spread(labels)
    for label in labels:  # drawn last so that no line covers them
        w = max(len(text) for text, _ in label.lines) * _CHAR + 10
        top = label.y - label.height / 2
        out.append(
            f'<rect x="{label.x - w / 2:.1f}" y="{top:.1f}" width="{w:.1f}" height="{label.height:.1f}" '
            f'rx="3" fill="{ui["card"]}" fill-opacity="0.94"/>'
        )
        for i, (text, is_threat) in enumerate(label.lines):
            style = f'fill="{threat}" font-weight="700"' if is_threat else f'fill="{faint}"'
            out.append(
                f'<text x="{label.x:.1f}" y="{top + 11 + 13 * i:.1f}" text-anchor="middle" font-size="10.5" '
                f"{style}>{_esc(text)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _ports(d: Diagram, pos, heights, column_of, back) -> dict[tuple[int, str], tuple[float, float]]:
    """Where each edge leaves and enters its boxes: edges sharing a side are spread along it,
    ordered by where their other end lies, so that lines and labels do not pile up."""
    sides: dict[tuple[str, str], list[tuple[float, int, str]]] = {}
    ports: dict[tuple[int, str], tuple[float, float]] = {}
    for e in d.edges:
        if id(e) in back:
            (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
            ports[(id(e), "src")] = (x1 + _W / 2, y1 + heights[e.src])
            ports[(id(e), "dst")] = (x2 + _W / 2, y2 + heights[e.dst])
            continue
        forward = column_of[e.src] < column_of[e.dst]
        src_side, dst_side = ("right", "left") if forward else ("left", "right")
        other_src = pos[e.dst][1] + heights[e.dst] / 2
        other_dst = pos[e.src][1] + heights[e.src] / 2
        sides.setdefault((e.src, src_side), []).append((other_src, id(e), "src"))
        sides.setdefault((e.dst, dst_side), []).append((other_dst, id(e), "dst"))
    for (node, side), items in sides.items():
        items.sort()
        x, y = pos[node]
        h = heights[node]
        for i, (_other, edge_id, end) in enumerate(items):
            ports[(edge_id, end)] = (x + (_W if side == "right" else 0), y + h * (i + 1) / (len(items) + 1))
    return ports


def _spread(labels: list[_Label]) -> None:
    """Push apart labels in the same gap that would overlap, keeping their order."""
    by_gap: dict[int, list[_Label]] = {}
    for label in labels:
        by_gap.setdefault(label.gap, []).append(label)
    for group in by_gap.values():
        group.sort(key=lambda label: label.y)
        for above, below in itertools.pairwise(group):
            needed = (above.height + below.height) / 2 + 6
            if below.y - above.y < needed:
                below.y = above.y + needed


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
