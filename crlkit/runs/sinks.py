"""Optional metric sinks beside metrics.jsonl: TensorBoard and Weights & Biases.

Used only when asked for (`--tensorboard`, `--wandb`), and only if the package is installed;
otherwise one line says what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crlkit import files
from crlkit.runs.checkpoint import RunDirError


class _TensorBoardSink:
    def __init__(self, path: Path):
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

    def log(self, event: dict) -> None:
        for name, value in event.items():
            if name not in ("step", "time") and _is_number(value):
                self._writer.add_scalar(name, value, event["step"], walltime=event["time"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _WandbSink:
    def __init__(self, path: Path, config: dict, project: str):
        try:
            import wandb
        except ImportError:
            raise RunDirError("--wandb needs the wandb package (pip install wandb)") from None
        id_file = path / "wandb_id.txt"
        if id_file.is_file():  # a resumed run continues the same W&B run
            run_id = id_file.read_text().strip()
        else:
            run_id = wandb.util.generate_id()
            files.atomic_write_bytes(id_file, run_id.encode())
        self._run = wandb.init(
            project=project, name=path.name, id=run_id, resume="allow", dir=str(path), config=config
        )

    def log(self, event: dict) -> None:
        scalars = {k: v for k, v in event.items() if k != "step" and _is_number(v)}
        self._run.log(scalars, step=event["step"])

    def close(self) -> None:
        self._run.finish()


def open_sinks(path: Path, config: dict, tensorboard: bool, wandb_project: str | None) -> list:
    """The sinks a run asked for (each has log(event) and close())."""
    sinks: list = []
    if tensorboard:
        sinks.append(_TensorBoardSink(path))
    if wandb_project:
        sinks.append(_WandbSink(path, config, wandb_project))
    return sinks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
