"""avsbench: rank, submit and score TRECVID Ad-hoc Video Search (AVS) runs.

The Python API, loaded lazily (``import avsbench`` imports nothing heavy, scoring never torch)::

    import avsbench as avs
    result = avs.evaluate("runs/laff.tv21.txt")       # sample_eval.pl's numbers
    frame = result.to_dataframe("wide")                # per topic x measure
    cmp = avs.compare(["runs/a.tv21.txt", "runs/b.tv21.txt"])
    fused = avs.fuse(["runs/a.tv21.txt", "runs/b.tv21.txt"], method="rrf")
    avs.topics(2021), avs.Qrels.read("avs.qrels.tv21"), avs.RunFile.read("run.txt")
    avs.load_model("models/laff"), avs.rank("models/laff", 2021)   # need avsbench[model]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute", imported on first use
_LAZY: dict[str, str] = {
    "evaluate": "avsbench.api:evaluate",
    "score_runs": "avsbench.api:score_runs",
    "compare": "avsbench.api:compare",
    "fuse": "avsbench.api:fuse",
    "topics": "avsbench.api:topics",
    "load_model": "avsbench.api:load_model",
    "rank": "avsbench.api:rank",
    "Qrels": "avsbench.data.qrels:Qrels",
    "RunFile": "avsbench.data.runs:RunFile",
    "EvalResult": "avsbench.eval.sample_eval:EvalResult",
    "Comparison": "avsbench.eval.compare:Comparison",
    "ScoredRun": "avsbench.eval.scoring:ScoredRun",
    "AvsbenchError": "avsbench.errors:AvsbenchError",
    "interop": "avsbench.interop",
}

__all__ = [
    "__version__",
    "evaluate",
    "score_runs",
    "compare",
    "fuse",
    "topics",
    "load_model",
    "rank",
    "Qrels",
    "RunFile",
    "EvalResult",
    "Comparison",
    "ScoredRun",
    "AvsbenchError",
    "interop",
]

if TYPE_CHECKING:
    from avsbench import interop
    from avsbench.api import compare, evaluate, fuse, load_model, rank, score_runs, topics
    from avsbench.data.qrels import Qrels
    from avsbench.data.runs import RunFile
    from avsbench.errors import AvsbenchError
    from avsbench.eval.compare import Comparison
    from avsbench.eval.sample_eval import EvalResult
    from avsbench.eval.scoring import ScoredRun


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'avsbench' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
