"""`crlkit collect`: vectorized rollouts of a policy in a crlkit env, written as an OGBench or
Minari dataset.

Episodes follow OGBench's data generation: every episode stores `episode_length + 1` rows (the
observation before each step and the action taken), the goal logic comes from the style:

* `navigate`: start in any free cell; goal in a maze "vertex" cell (not a straight corridor cell),
  a new one after each success (OGBench's navigate data).
* `stitch`: one goal per episode, a cell `stitch_cells` BFS steps from the start (OGBench's stitch).
* `explore`: a random unit direction every `explore_every` steps (OGBench's explore data).

Policies: `random` (uniform actions), `expert` (OGBench's scripted point-maze controller: head for
the centre of the next cell on a BFS path to the goal, or along the explore direction), or a
`crlkit online` run directory (its latest checkpoint's actor, deterministic, as OGBench's SAC
experts). Gaussian noise of std `noise` is added and actions are clipped to [-1, 1].

Envs run in lockstep (`num_envs` at a time, vmapped, scanned in jitted chunks); rows reach the host
once per chunk. The dataset is written only when every episode is done, atomically (temporaries
renamed into place), so a killed collect leaves no dataset that looks complete.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from crlkit.config import option_field
from crlkit.data import minari_io, ogbench_io
from crlkit.data.dataset import Dataset, from_raw

POLICIES = ("random", "expert")  # or a run directory
STYLES = ("navigate", "stitch", "explore")
FORMATS = ("ogbench", "minari")
CHUNK = 250  # env steps per jitted scan call (rows reach the host this often)
EXPLORE_REACH = 4.0  # a checkpoint policy exploring aims this far along the direction (one cell)
_OFFSETS = ((-1, 0), (0, -1), (1, 0), (0, 1))  # OGBench's BFS neighbour order


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What `crlkit collect` rolls out and where it writes (every field is a CLI flag)."""

    env: str = option_field("", "Env to collect in (see: crlkit envs). Required.")
    policy: str = option_field(
        "random",
        "random, expert (scripted BFS controller, point mazes only) or a `crlkit online` run "
        "directory whose latest checkpoint's actor acts (ant/humanoid experts).",
    )
    style: str = option_field(
        "navigate",
        "navigate: a new goal after each success; stitch: one goal a few cells away; "
        "explore: a random direction every few steps.",
        STYLES,
    )
    steps: int = option_field(
        100_000, "Transitions to collect in the train split (rounded up to whole episodes)."
    )
    episode_length: int = option_field(
        0, "Transitions per episode (each stores one more row); 0: the env's episode length."
    )
    noise: float = option_field(
        0.2, "Std of the Gaussian noise added to every action (then clipped)."
    )
    val_fraction: float = option_field(
        0.1, "Extra val episodes, as a fraction of the train episodes (ogbench format only)."
    )
    format: str = option_field(
        "ogbench", "ogbench: NAME.npz + NAME-val.npz; minari: a Minari dataset.", FORMATS
    )
    out: str = option_field(
        "",
        "Output: NAME.npz (ogbench), or a directory whose name is the Minari id (name-v0), or "
        "minari:<id> (into Minari's root). Required.",
    )
    backend: str = option_field("auto", "Physics backend: auto, native, mjx or warp.")
    num_envs: int = option_field(64, "Envs rolled out in lockstep.")
    seed: int = option_field(0, "Seed of every random draw (starts, goals, noise, policy).")
    explore_every: int = option_field(10, "explore: steps between new random directions.")
    stitch_cells: int = option_field(4, "stitch: BFS distance in cells from the start to the goal.")
    overwrite: bool = option_field(False, "Replace an existing output (otherwise it is an error).")

    def __post_init__(self):
        if not self.env:
            raise ValueError("--env is required (see: crlkit envs)")
        if not self.out:
            raise ValueError("--out is required (NAME.npz, a Minari directory or minari:<id>)")
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; valid: {', '.join(STYLES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid: {', '.join(FORMATS)}")
        if self.format == "ogbench" and not self.out.endswith(".npz"):
            raise ValueError(f"--out {self.out!r} must end in .npz for --format ogbench")
        if self.policy not in POLICIES and not Path(self.policy).is_dir():
            raise ValueError(
                f"--policy {self.policy!r} is neither {' nor '.join(POLICIES)} nor a run directory"
            )
        for name in ("steps", "num_envs", "explore_every", "stitch_cells"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.episode_length < 0 or self.noise < 0 or not 0 <= self.val_fraction < 1:
            raise ValueError(
                "--episode-length and --noise must be >= 0 and --val-fraction in [0, 1), got "
                f"{self.episode_length}, {self.noise}, {self.val_fraction}"
            )


class Rows(NamedTuple):
    """One env step's record: the row before the step, and whether the step ended the episode."""

    obs: jax.Array
    action: jax.Array
    qpos: jax.Array
    qvel: jax.Array
    goal: jax.Array
    done: jax.Array


class Carry(NamedTuple):
    """Per-env loop state."""

    env: Any
    t: jax.Array
    direction: jax.Array
    key: jax.Array


# --------------------------------------------------------------------------------- maze geometry


@dataclasses.dataclass(frozen=True)
class MazeGraph:
    """BFS tables over a maze's cells (row-major cell ids i * cols + j), built once with NumPy.

    Attributes:
      cols: grid width.
      dist: [cells, cells] BFS steps between free cells (-1: unreachable or wall).
      next_cell: [goal, cell] the neighbour of `cell` one BFS step closer to `goal` (itself when
        none is closer), chosen as OGBench's get_oracle_subgoal does.
      vertex: [cells] free cells that are not straight-corridor cells (OGBench's goal cells).
    """

    cols: int
    dist: np.ndarray
    next_cell: np.ndarray
    vertex: np.ndarray

    @classmethod
    def build(cls, grid: np.ndarray) -> MazeGraph:
        rows, cols = grid.shape
        n = rows * cols
        dist = np.stack([_bfs(grid, divmod(c, cols)) for c in range(n)])
        next_cell = np.tile(np.arange(n), (n, 1))
        for goal in range(n):
            for cell in range(n):
                i, j = divmod(cell, cols)
                best = cell
                for di, dj in _OFFSETS:
                    ni, nj = i + di, j + dj
                    nb = ni * cols + nj
                    if 0 <= ni < rows and 0 <= nj < cols and grid[ni, nj] == 0:
                        # OGBench compares -1 (unreached) as a number too; keep its tie rules.
                        if dist[goal, nb] < dist[goal, best]:
                            best = nb
                next_cell[goal, cell] = best
        return cls(cols=cols, dist=dist, next_cell=next_cell, vertex=_vertex_cells(grid))


def _bfs(grid: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """BFS steps from `start` to every cell (-1 for walls and unreachable cells)."""
    rows, cols = grid.shape
    dist = np.full(rows * cols, -1, np.int32)
    if grid[start] != 0:
        return dist
    dist[start[0] * cols + start[1]] = 0
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        for di, dj in _OFFSETS:
            ni, nj = i + di, j + dj
            if 0 <= ni < rows and 0 <= nj < cols and grid[ni, nj] == 0:
                if dist[ni * cols + nj] == -1:
                    dist[ni * cols + nj] = dist[i * cols + j] + 1
                    queue.append((ni, nj))
    return dist


def _vertex_cells(grid: np.ndarray) -> np.ndarray:
    """Mask of free cells that are not straight corridors (walls on both sides, open ahead)."""
    free = grid == 0
    padded = np.pad(grid, 1, constant_values=1)
    up, down = padded[:-2, 1:-1] == 0, padded[2:, 1:-1] == 0
    left, right = padded[1:-1, :-2] == 0, padded[1:-1, 2:] == 0
    vertical = up & down & ~left & ~right
    horizontal = left & right & ~up & ~down
    return (free & ~vertical & ~horizontal).reshape(-1)


# ------------------------------------------------------------------------------------ the policy


def _noisy(action: jax.Array, noise: float, key: jax.Array) -> jax.Array:
    """OGBench's exploration noise: add N(0, noise^2), clip to [-1, 1]."""
    return jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0)


def _unit(v: jax.Array) -> jax.Array:
    return v / (jnp.linalg.norm(v) + 1e-6)


def make_policy(cfg: CollectConfig, env, graph: MazeGraph | None):
    """policy(env_state, direction, key) -> noiseless action, for the configured policy."""
    spec = env.spec
    if cfg.policy == "random":
        return lambda s, direction, key: jax.random.uniform(
            key, (spec.action_dim,), minval=-1.0, maxval=1.0
        )
    if cfg.policy == "expert":
        if spec.body != "point" or graph is None:
            raise ValueError(
                f"--policy expert is the scripted point-maze controller; env {spec.name!r} has a "
                f"{spec.body}: pass a `crlkit online` run directory instead"
            )
        return functools.partial(_expert_action, env, graph, cfg.style == "explore")
    return checkpoint_policy(cfg.policy, spec, cfg.style == "explore")


def _expert_action(env, graph: MazeGraph, explore: bool, s, direction, key) -> jax.Array:
    """Unit step toward the next BFS cell centre on the way to the goal (or along `direction`)."""
    if explore:
        return direction
    maze = env.spec.maze
    xy = env.body.xy(s.physics)
    cell, goal_cell = _cell_id(maze, graph, xy), _cell_id(maze, graph, s.goal)
    sub = jnp.asarray(graph.next_cell)[goal_cell, cell]
    sub_xy = maze.cell_to_xy(jnp.stack([sub // graph.cols, sub % graph.cols]))
    return _unit(sub_xy - xy)


def _cell_id(maze, graph: MazeGraph, xy: jax.Array) -> jax.Array:
    rows = len(maze.grid)
    ij = jnp.clip(maze.xy_to_cell(xy), 0, jnp.asarray([rows - 1, graph.cols - 1]))
    return ij[0] * graph.cols + ij[1]


def checkpoint_policy(run_dir: str, spec, explore: bool):
    """policy(...) from the latest checkpoint of a `crlkit online` run (deterministic actor)."""
    from crlkit import learner

    nets, actor_params = load_actor(run_dir, spec)

    def policy(s, direction, key):
        xy = s.obs[jnp.asarray(spec.goal_indices)]
        goal = xy + EXPLORE_REACH * direction if explore else s.goal
        return learner.act(nets, actor_params, s.obs[: spec.state_dim], goal, key, True)

    return policy


def load_actor(run_dir: str | Path, spec):
    """(networks, actor params) of a run directory's newest checkpoint, checked against `spec`.

    The run's `config.json` holds the learner config under `learner`; the checkpoint (written by
    `crlkit.train.rundir`) holds a `CRLState` somewhere in its tree: its `.actor.params` leaves
    are found by path suffix, so the loop may store the learner state under any key.

    Raises:
      ValueError: one line naming the run and the problem (no config, no checkpoint, wrong env).
    """
    from crlkit import learner
    from crlkit.config import LearnerConfig, from_dict
    from crlkit.train import rundir

    run = Path(run_dir)
    config_file = run / rundir.CONFIG_FILE
    if not config_file.is_file():
        raise ValueError(f"{run}: not a crlkit run directory (no {rundir.CONFIG_FILE})")
    learner_cfg = from_dict(LearnerConfig, json.loads(config_file.read_text()).get("learner", {}))
    found = rundir.list_checkpoints(run / rundir.CHECKPOINT_DIR)
    if not found:
        raise ValueError(f"{run}: no checkpoint in {rundir.CHECKPOINT_DIR}/ yet")
    path = found[-1][1]
    dims = learner.Dims(spec.state_dim, spec.goal_dim, spec.action_dim)
    nets = learner.make_networks(learner_cfg, dims)
    template = jax.eval_shape(
        lambda k: learner.init(nets, learner_cfg, dims, k).actor.params, jax.random.PRNGKey(0)
    )
    stored = _checkpoint_leaves(path)
    leaves = []
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    for key_path, like in flat:
        suffix = ".actor.params" + jax.tree_util.keystr(key_path)
        hits = [name for name in stored if name.endswith(suffix)]
        if len(hits) != 1:
            raise ValueError(f"{path}: holds no actor parameter {suffix} (not a CRL checkpoint?)")
        value = stored[hits[0]]
        if value.shape != like.shape:
            raise ValueError(
                f"{path}: actor parameter {suffix} has shape {value.shape}, env {spec.name!r} "
                f"needs {like.shape} (was the run trained on another env?)"
            )
        leaves.append(jnp.asarray(value, like.dtype))
    return nets, jax.tree_util.tree_unflatten(treedef, leaves)


def _checkpoint_leaves(path: Path) -> dict[str, np.ndarray]:
    """Leaf path -> array of a rundir checkpoint file."""
    from crlkit.train import rundir

    try:
        header, arrays = rundir.read_checkpoint_file(path)
    except rundir.RunDirError as err:
        raise ValueError(str(err)) from None
    return {leaf["path"]: arrays[f"leaf_{i:05d}"] for i, leaf in enumerate(header["leaves"])}


# ------------------------------------------------------------------------------------ goal logic


class Goals:
    """Goal draws for the styles: navigate (vertex cells), stitch (cells k BFS steps away)."""

    def __init__(self, env, graph: MazeGraph | None, cfg: CollectConfig):
        self.env, self.graph, self.cfg = env, graph, cfg
        self.ogbench = env.spec.ogbench_env_id is not None

    def navigate(self, key: jax.Array) -> jax.Array:
        """A new navigate goal: an OGBench vertex cell plus cell noise (else the env's own draw)."""
        maze = self.env.spec.maze
        if maze is None or not self.ogbench:
            return self.env.tasks.sample(key)[1]
        k_cell, k_noise = jax.random.split(key)
        logits = jnp.where(jnp.asarray(self.graph.vertex), 0.0, -jnp.inf)
        return self._cell_xy(jax.random.categorical(k_cell, logits), k_noise)

    def stitch(self, key: jax.Array, start_xy: jax.Array) -> jax.Array:
        """A goal `stitch_cells` BFS steps from the start cell (the start cell when none is)."""
        if self.env.spec.maze is None:
            return self.env.tasks.sample(key)[1]
        k_cell, k_noise = jax.random.split(key)
        start = _cell_id(self.env.spec.maze, self.graph, start_xy)
        mask = jnp.asarray(self.graph.dist)[start] == self.cfg.stitch_cells
        cell = jax.random.categorical(k_cell, jnp.where(mask, 0.0, -jnp.inf))
        return self._cell_xy(jnp.where(mask.any(), cell, start), k_noise)

    def _cell_xy(self, cell: jax.Array, key: jax.Array) -> jax.Array:
        maze = self.env.spec.maze
        xy = maze.cell_to_xy(jnp.stack([cell // self.graph.cols, cell % self.graph.cols]))
        noise = maze.goal_noise
        return xy + jax.random.uniform(key, (2,), minval=-noise, maxval=noise)


def _with_goal(s, goal: jax.Array, state_dim: int):
    """The env state commanded toward `goal` (observation updated; success recomputed next step)."""
    return s.replace(goal=goal, obs=jnp.concatenate([s.obs[:state_dim], goal]))


# ------------------------------------------------------------------------------------ the rollout


def _random_direction(key: jax.Array) -> jax.Array:
    return _unit(jax.random.normal(key, (2,)))


def make_rollout(cfg: CollectConfig, env, policy, goals: Goals):
    """(reset(keys) -> carry, run(carry) -> (carry, Rows [CHUNK, num_envs, ...])), both jitted."""
    spec = env.spec
    style = cfg.style

    def reset_one(key):
        k_env, k_goal, k_dir, k_loop = jax.random.split(key, 4)
        s = env.reset(k_env)
        if style == "navigate":
            s = _with_goal(s, goals.navigate(k_goal), spec.state_dim)
        elif style == "stitch":
            s = _with_goal(s, goals.stitch(k_goal, env.body.xy(s.physics)), spec.state_dim)
        return Carry(s, jnp.int32(0), _random_direction(k_dir), k_loop)

    def step_one(c: Carry, _):
        key, k_dir, k_act, k_noise, k_goal = jax.random.split(c.key, 5)
        new_dir = c.t % cfg.explore_every == 0
        direction = jnp.where(new_dir, _random_direction(k_dir), c.direction)
        s = c.env
        action = _noisy(policy(s, direction, k_act), cfg.noise, k_noise)
        nxt = env.step(s, action)
        if style == "navigate":  # OGBench: a new goal as soon as the current one is reached
            goal = jnp.where(nxt.success > 0, goals.navigate(k_goal), nxt.goal)
            nxt = _with_goal(nxt, goal, spec.state_dim)
        row = Rows(
            s.obs[: spec.state_dim], action, s.physics.qpos, s.physics.qvel, s.goal, nxt.done
        )
        return Carry(nxt, c.t + 1, direction, key), row

    def run(carry: Carry):
        return jax.lax.scan(jax.vmap(step_one), carry, None, length=CHUNK)

    return jax.jit(jax.vmap(reset_one)), jax.jit(run)


def _episode_rows(rows: Rows, length: int) -> list[dict[str, np.ndarray]]:
    """Per-env episodes from [time, env] rows: `length + 1` rows, or fewer when an env terminated.

    A step that terminates (e.g. a fallen humanoid) makes the next row the episode's final one.
    """
    host = jax.tree.map(np.asarray, rows)
    episodes = []
    for e in range(host.obs.shape[1]):
        done = np.flatnonzero(host.done[:length, e] > 0)
        last = int(done[0]) + 1 if done.size else length  # index of the final row
        episodes.append({k: v[: last + 1, e] for k, v in host._asdict().items() if k != "done"})
    return episodes


# ----------------------------------------------------------------------------------- entry point


def collect(cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Rolls out, writes the dataset, and returns a summary (paths, episodes, rows, steps/s)."""
    from crlkit.envs import make

    out = Path(cfg.out)
    _check_output(cfg, out)
    env = make(cfg.env, backend=cfg.backend).unwrapped
    spec = env.spec
    graph = MazeGraph.build(spec.maze.array) if spec.maze is not None else None
    if cfg.style == "stitch" and graph is None:
        raise ValueError(f"--style stitch needs a maze; env {spec.name!r} has an open floor")
    policy = make_policy(cfg, env, graph)
    length = cfg.episode_length or spec.episode_length
    train_eps = math.ceil(cfg.steps / length)
    val_eps = math.ceil(train_eps * cfg.val_fraction) if cfg.format == "ogbench" else 0
    episodes, env_steps, rate = _roll_out(
        cfg, env, policy, graph, length, train_eps + val_eps, progress
    )
    meta = _metadata(cfg, spec, length, out)
    train = _to_dataset(episodes[:train_eps], spec, {**meta, "split": "train"})
    val = _to_dataset(episodes[train_eps:], spec, {**meta, "split": "val"}) if val_eps else None
    if cfg.format == "ogbench":
        paths = ogbench_io.write_npz(train, val, out)
    else:
        paths = [
            minari_io.write_minari(
                train,
                cfg.out,
                env_name=spec.name,
                ogbench_env_id=spec.ogbench_env_id,
                overwrite=cfg.overwrite,
            )
        ]
    return {
        "paths": [str(p) for p in paths],
        "episodes": train_eps + val_eps,
        "rows": train.num_rows + (val.num_rows if val else 0),
        "env_steps": env_steps,
        "steps_per_second": rate,
        "backend": spec.backend,
    }


def _check_output(cfg: CollectConfig, out: Path) -> None:
    """Refuses to clobber an existing dataset unless --overwrite (checked before any work)."""
    if cfg.format == "ogbench":
        existing = [p for p in (out, ogbench_io.val_path(out)) if p.exists()]
    else:
        path, _ = minari_io.resolve_out(cfg.out)
        existing = [path] if path.exists() else []
    if existing and not cfg.overwrite:
        raise ValueError(f"{existing[0]} already exists; pass --overwrite to replace it")


def _roll_out(cfg, env, policy, graph, length, num_episodes, progress):
    """All episodes (host dicts), env steps taken, and env steps/s after compilation."""
    from tqdm import tqdm

    num_envs = min(cfg.num_envs, num_episodes)
    rounds = math.ceil(num_episodes / num_envs)
    chunks = math.ceil((length + 1) / CHUNK)
    reset, run = make_rollout(cfg, env, policy, Goals(env, graph, cfg))
    total = rounds * chunks * CHUNK * num_envs
    bar = tqdm(
        total=total,
        unit="step",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
        desc=f"collect {env.spec.name}",
        smoothing=0.1,
    )
    episodes: list[dict[str, np.ndarray]] = []
    key = jax.random.PRNGKey(cfg.seed)
    start, timed_steps = None, 0
    for _ in range(rounds):
        key, k_round = jax.random.split(key)
        carry = reset(jax.random.split(k_round, num_envs))
        parts = []
        for _ in range(chunks):
            carry, rows = run(carry)
            parts.append(jax.device_get(rows))
            bar.update(CHUNK * num_envs)
            if start is None:  # the first chunk pays for compilation: time from its end
                start = time.perf_counter()
            else:
                timed_steps += CHUNK * num_envs
        rows = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
        episodes.extend(_episode_rows(rows, length))
    seconds = time.perf_counter() - start
    bar.close()
    rate = timed_steps / seconds if timed_steps else float("nan")
    return episodes[:num_episodes], total, rate


def _to_dataset(episodes: list[dict[str, np.ndarray]], spec, metadata: dict) -> Dataset:
    """Stacks host episodes into the layout."""
    cat = {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}
    terminals = np.concatenate([np.arange(len(ep["obs"])) == len(ep["obs"]) - 1 for ep in episodes])
    extras = {"qpos": cat["qpos"], "qvel": cat["qvel"]}
    if metadata["style"] != "explore":
        extras["desired_goals"] = cat["goal"]
    return from_raw(
        cat["obs"],
        cat["action"],
        terminals,
        goal_indices=spec.goal_indices,
        source=metadata["name"],
        extras={k: v.astype(np.float32) for k, v in extras.items()},
        metadata=metadata,
    )


def _metadata(cfg: CollectConfig, spec, length: int, out: Path) -> dict[str, Any]:
    """What the dataset records about how it was made."""
    import crlkit

    name = out.name[: -len(".npz")] if cfg.format == "ogbench" else out.name
    return {
        "name": name,
        "env": spec.name,
        "ogbench_env_id": spec.ogbench_env_id,
        "backend": spec.backend,
        "policy": cfg.policy,
        "style": cfg.style,
        "noise": cfg.noise,
        "seed": cfg.seed,
        "episode_length": length,
        "crlkit_version": crlkit.__version__,
        "collect": command_line(cfg),
    }


def command_line(cfg: CollectConfig) -> str:
    """The `crlkit collect` command that reproduces `cfg` (the main flags always, others if set)."""
    always = (
        "env",
        "policy",
        "style",
        "steps",
        "episode_length",
        "noise",
        "num_envs",
        "seed",
        "format",
        "out",
    )
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    names = [*always, *(n for n in fields if n not in always and n != "overwrite")]
    parts = ["crlkit collect"]
    for name in names:
        value = getattr(cfg, name)
        if (
            name in always
            and not (name == "episode_length" and value == 0)
            or (value != fields[name].default)
        ):
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)
