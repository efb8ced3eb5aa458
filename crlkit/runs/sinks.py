"""Optional metric sinks beside metrics.jsonl: TensorBoard and Weights & Biases.

`TrackingConfig` holds what a run asks of them (`--tensorboard`, `--wandb`, `--wandb-project`,
`--name`, `--tags`, `--group`, on online, offline and sweep alike). A sink is opened only when
asked for, and only if its package is installed; otherwise one line says what to install.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

from crlkit import files
from crlkit.checks import check_fields
from crlkit.config import option_field
from crlkit.runs.checkpoint import RunDirError

MAX_TAG_CHARS = 64  # W&B refuses longer tags


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Where a run's metrics go besides metrics.jsonl/csv, and how they are labelled there.

    Not part of the run's config.json: it names the experiment, it does not define it (a resumed
    run may log to new sinks or under new tags).
    """

    tensorboard: bool = option_field(
        False, "Also log scalars to <run dir>/tensorboard (needs tensorboardX or torch)."
    )
    wandb: bool = option_field(
        False, "Also log to Weights & Biases (needs wandb; WANDB_MODE=offline logs locally)."
    )
    wandb_project: str = option_field("crlkit", "The W&B project.")
    name: str | None = option_field(
        None, "The run's name in TensorBoard and W&B.", auto="the run dir's name"
    )
    tags: tuple[str, ...] = option_field(
        (),
        "A tag for the run in W&B (and TensorBoard's text tab); give the flag once per tag "
        "(--tags baseline --tags deep).",
        repeat=True,
    )
    group: str | None = option_field(
        None,
        "The W&B group the run belongs to (also shown in TensorBoard's text tab).",
        auto="none for a single run; a sweep's cells: the sweep folder's name",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        for tag in self.tags:
            if "," in tag:
                raise ValueError(
                    f"--tags {tag!r}: a tag cannot contain ','; give --tags once per tag "
                    f"(--tags a --tags b)"
                )
            if len(tag) > MAX_TAG_CHARS:
                raise ValueError(f"--tags {tag!r}: at most {MAX_TAG_CHARS} characters (W&B's)")

    @property
    def active(self) -> bool:
        """Whether any sink is asked for."""
        return self.tensorboard or self.wandb

    def labels(self, path: Path) -> dict[str, Any]:
        """{name, group, tags} as the sinks show them (the name defaults to the run dir's)."""
        return {"name": self.name or path.name, "group": self.group, "tags": list(self.tags)}


class _TensorBoardSink:
    def __init__(self, path: Path, labels: dict[str, Any]):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RunDirError(
                    "--tensorboard needs tensorboardX (pip install tensorboardX) or torch"
                ) from None
        self._writer = SummaryWriter(str(path / "tensorboard"))
        shown = [f"name: {labels['name']}", f"group: {labels['group'] or '-'}"]
        shown.append(f"tags: {', '.join(labels['tags']) or '-'}")
        self._writer.add_text("run", "  \n".join(shown), 0)

    def log(self, event: dict) -> None:
        for name, value in event.items():
            if name not in ("step", "time") and _is_number(value):
                self._writer.add_scalar(name, value, event["step"], walltime=event["time"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _WandbSink:
    def __init__(self, path: Path, config: dict, project: str, labels: dict[str, Any]):
        try:
            import wandb
        except ImportError:
            raise RunDirError("--wandb needs the wandb package (pip install wandb)") from None
        id_file = path / "wandb_id.txt"
        if id_file.is_file():  # a resumed run continues the same W&B run
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:12]  # W&B ids: letters, digits, - and _
            files.atomic_write_bytes(id_file, run_id.encode())
        self.run = wandb.init(
            project=project,
            id=run_id,
            resume="allow",
            dir=str(path),
            config=config,
            name=labels["name"],
            group=labels["group"],
            tags=labels["tags"] or None,
        )

    def log(self, event: dict) -> None:
        scalars = {k: v for k, v in event.items() if k != "step" and _is_number(v)}
        self.run.log(scalars, step=event["step"])

    def close(self) -> None:
        self.run.finish()


def open_sinks(path: Path, config: dict, tracking: TrackingConfig) -> list:
    """The sinks a run asked for (each has log(event) and close())."""
    labels = tracking.labels(path)
    sinks: list = []
    if tracking.tensorboard:
        sinks.append(_TensorBoardSink(path, labels))
    if tracking.wandb:
        sinks.append(_WandbSink(path, config, tracking.wandb_project, labels))
    return sinks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
