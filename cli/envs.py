"""`crlkit envs`: list the registered goal-conditioned envs (sizes, limits, backends)."""

from __future__ import annotations

import dataclasses
import json

import click


@click.command("envs")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the env specs as JSON.")
def envs(name: str | None, as_json: bool) -> None:
    """List every registered env; with NAME (underscores accepted), show that env's full spec."""
    from crlkit.envs import registry

    try:
        names = [registry.canonical_name(name)] if name else registry.list_envs()
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from None
    backends = registry.available_backends()
    specs = [registry.make_spec(n, backend="auto") for n in names]
    if as_json or name:
        payload = [_spec_dict(spec, backends) for spec in specs]
        click.echo(json.dumps(payload[0] if name else payload, indent=2))
        return
    click.echo(_table(specs, backends))


def _spec_dict(spec, backends: list[str]) -> dict:
    """An EnvSpec as JSON-ready dict: `backends` = the env's backends installed here,
    `terminates` = whether an episode can end before its limit (torso height band)."""
    out = dataclasses.asdict(spec)
    out.pop("backend")
    out["obs_dim"] = spec.obs_dim
    out["terminates"] = spec.healthy_z is not None
    if spec.maze is not None:  # rows as strings read better than nested lists
        out["maze"]["grid"] = ["".join(str(v) for v in row) for row in spec.maze.grid]
    out["backends"] = [b for b in (spec.backends or backends) if b in backends]
    return out


def _table(specs, backends: list[str]) -> str:
    """Fixed-width table: name, obs/goal/action sizes, episode length, radius, OGBench id."""
    header = ("name", "family", "obs (state+goal)", "goal", "action", "dt", "episode", "radius")
    header = (*header, "ogbench env")
    rows = [header]
    for s in specs:
        rows.append(
            (
                s.name,
                s.family,
                f"{s.state_dim}+{s.goal_dim}",
                str(s.goal_dim),
                str(s.action_dim),
                f"{s.control_dt:g}",
                str(s.episode_length),
                f"{s.success_radius:g}",
                s.ogbench_env_id or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append(
        f"backends available: {', '.join(backends)} (choose with backend=...; 'auto' "
        "= native on CPU, mjx on GPU; 'spring' for the paper family only, needs crlkit[brax])"
    )
    return "\n".join(lines)
