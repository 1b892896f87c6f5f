"""Recovery from a partly failed batch of workbooks, as a plan.

The manual's recovery moves every output aside (`mv output/*.xlsx output/backup_*/`)
and re-runs everything. Here only the inputs without a sound output are named: they go
into a retry list with the command that processes just them, and their unsound outputs
(too small, unreadable, short of rows, older than the input) are moved into
`failed-<time>/` beside the outputs, kept rather than deleted, so the re-run starts clean
and nothing is lost.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes.workbook_outputs import failed_inputs, output_path
from opslib.probes.workbooks import input_files
from opslib.profiles import Profile


@dataclass
class RetryFailed:
    """Write the retry list of the failed inputs and move their unsound outputs aside."""

    profile: Profile
    needs: ClassVar[str] = "workbooks"
    name: str = "retry_failed_inputs"

    def rerun_command(self, inputs: list[Path]) -> str:
        """The profile's re-run command with the failed inputs in place of `{files}`."""
        template = self.profile.workbooks.rerun_command
        if template is None:
            return ""
        return template.format(files=" ".join(shlex.quote(str(path)) for path in inputs))

    def plan(self) -> Plan:
        failed = failed_inputs(self.profile)
        folder = self.profile.output_folder()
        changes = [{"retry": name, "because": problem} for name, problem in
                   zip(failed["input"], failed["problem"], strict=True)]  # fmt: skip
        changes += [
            {"move": output, "into": "failed-<time of apply>/"}
            for output, problem in zip(failed["output"], failed["problem"], strict=True)
            if problem != "missing"
        ]
        moved = sum("move" in change for change in changes)
        return Plan(
            action=self.name,
            target=str(folder),
            summary=f"list {len(failed)} failed input(s) for a re-run in {folder}/retry-<time>.txt "
            f"and move {moved} unsound output(s) into {folder}/failed-<time>/",
            changes=tuple(changes),
            context=failed.set_index("input") if len(failed) else None,
        )

    def apply(self, plan: Plan) -> Applied:
        """Re-check each input: one whose output became sound since the plan is skipped,
        and only outputs the plan named are moved (never one a re-run is writing now)."""
        still = failed_inputs(self.profile)
        still_failed = dict(zip(still["input"], still["problem"], strict=True))
        stamp = utc_now().strftime("%Y%m%d-%H%M%S")
        folder = self.profile.output_folder()
        planned = [c["retry"] for c in plan.changes if "retry" in c]
        retry = [name for name in planned if name in still_failed]
        skipped = [name for name in planned if name not in still_failed]
        workbooks, _locks = input_files(self.profile)
        by_name = {path.name: path for path in workbooks}
        to_move = {c["move"] for c in plan.changes if "move" in c}
        moved, aside = [], folder / f"failed-{stamp}"
        for name in retry:
            output = output_path(self.profile, by_name[name]) if name in by_name else None
            if output is None or output.name not in to_move or still_failed[name] == "missing":
                continue
            aside.mkdir(exist_ok=True)
            shutil.move(output, aside / output.name)
            moved.append({"moved": str(output), "to": str(aside / output.name)})
        inputs = [by_name[name] for name in retry if name in by_name]
        retry_list = folder / f"retry-{stamp}.txt"
        command = self.rerun_command(inputs)
        header = [f"# {len(inputs)} input(s) to process again, listed by opslib {stamp} UTC"]
        if command:
            header.append(f"# re-run: {command}")
        retry_list.write_text(
            "\n".join(header + [str(path) for path in inputs]) + "\n", encoding="utf-8"
        )
        changes = [{"retry_list": str(retry_list), "inputs": retry}, *moved]
        return Applied(len(inputs), len(planned), len(still_failed), changes, skipped, None)
