"""Entry points of processes that share a dataset store with a test (importable when spawned)."""

from __future__ import annotations

import json
import time
from pathlib import Path


def annotate_together(barrier, folder: str, targets: list[str], out: str) -> None:
    """Run ``annotate`` here, measuring only once every party of ``barrier`` has its work list.

    Writes this process's claimant and summary to ``out`` as JSON.
    """
    from perfsage.dataset.annotate import annotate
    from perfsage.dataset.claims import Claimant

    started: list[bool] = []

    def progress(_summary) -> None:
        if not started:
            started.append(True)
            barrier.wait(timeout=120)

    summary = annotate(folder, targets, workers=1, progress=progress)
    Path(out).write_text(json.dumps({"claimant": str(Claimant.this_process()),
                                     "done": summary.done, "total": summary.total}))


def claim_and_hold(folder: str, target: str, count: int) -> None:
    """Claim ``count`` models for ``target``, say so on stdout, then hold them until killed."""
    from perfsage.dataset.claims import Claimant
    from perfsage.dataset.store import Store

    with Store(folder) as store:
        claimed, _ = store.claim(iter(store.model_ids_by_hash()), [target],
                                 Claimant.this_process(), count=count,
                                 settings_hashes={target: "held-by-a-test"}, lease_s=600)
    print(json.dumps(claimed), flush=True)
    time.sleep(600)
