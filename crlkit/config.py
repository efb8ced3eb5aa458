"""Learner configuration: frozen dataclasses, validated once, that also define the CLI options.

Every field of every config class is declared with `option_field`: its documentation, allowed
names, range and what `None` ("auto": decided later, e.g. per dataset) resolves to travel in the
field's metadata, so the docstring, the validation (`crlkit.checks.check_fields`, run first by
every config's `__post_init__`) and the `--help` text of every CLI come from one place.
The CLI's flags are generated from these fields by `cli/options.py` (`config_options`,
`build_config`); `to_dict`/`from_dict` are the config.json form.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crlkit.checks import check_depth, check_fields

ACTIVATIONS = ("swish", "relu", "gelu")
ENERGIES = ("l2", "l2_squared", "l1", "dot", "cosine", "mrn")
CONTRASTIVE_LOSSES = ("fwd_infonce", "bwd_infonce", "sym_infonce", "binary_nce")
ACTOR_LOSSES = ("sac", "ddpg_bc")
TOWERS = ("residual", "mlp")
ACTOR_DISTS = ("tanh_gaussian", "gaussian_const_std")
REMAT_MODES = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine", "linear-warmup")  # see crlkit.optim.schedule
NORMS = ("layernorm", "hyperspherical")
RESIDUAL_SCALES = ("none", "inv-sqrt-blocks")
# The offline quickstart preset (chosen by a grid on the shipped sample: docs/benchmarks.md).
QUICK_WIDTH = 128
QUICK_LR = 3e-3
# remat=auto: on at every depth on a CPU, elsewhere from this depth (of the deeper tower) on.
AUTO_REMAT_DEPTH = 256


def option_field(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    auto: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    multiple_of: int | None = None,
    allow_inf: bool = False,
    maximum_why: str | None = None,
    repeat: bool = False,
) -> Any:
    """A dataclass field whose documentation, allowed values and "auto" travel with it.

    Args:
      default: the value when the flag is not given; None (with `auto`) means "decided later".
      help: the field's documentation (also its `--help` text).
      choices: the allowed names of a text field.
      auto: what None resolves to, shown as `[default: auto: <auto>]`; the flag takes `auto`.
      minimum, maximum: inclusive bounds; above, below: exclusive bounds (numbers).
      multiple_of: an integer field must be a multiple of this.
      allow_inf: a float field may be +-inf (nan never is).
      maximum_why: why the maximum is what it is (said in the error).
      repeat: a tuple field whose flag is given once per item (`--tags a --tags b`), for items
        that are free text (the usual tuple flag takes comma-separated values).
    """
    bounds = {"minimum": minimum, "maximum": maximum, "above": above, "below": below}
    metadata = {"help": help, "choices": choices, "auto": auto, **bounds}
    metadata |= {"multiple_of": multiple_of, "allow_inf": allow_inf, "maximum_why": maximum_why}
    metadata |= {"repeat": repeat}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Shape of the three towers: the actor, phi(s, a) and psi(g).

    `tower="residual"` is the paper's network: Dense -> LayerNorm -> act, then depth/4 residual
    blocks (depth counts the Dense layers inside the blocks, a multiple of 4). `tower="mlp"` is
    OGBench's MLP: depth x [Dense(width) -> act -> LayerNorm] (depth counts every hidden layer),
    glorot-uniform kernels and an actor mean head initialised at scale 1e-2. Either tower ends in a
    linear head: `repr_dim` for phi and psi (OGBench's latent_dim), the action size for the actor.
    """

    tower: str = option_field(
        "residual",
        "residual: the paper's residual tower; mlp: OGBench's MLP (Dense -> act -> LayerNorm).",
        TOWERS,
    )
    width: int = option_field(256, "Units per Dense layer of every tower.", minimum=1)
    critic_depth: int = option_field(
        4,
        "Dense layers of phi and psi: inside the residual blocks (positive multiple of 4), or "
        "the hidden layers of the mlp tower.",
    )
    actor_depth: int = option_field(
        4,
        "Dense layers of the actor: inside the residual blocks (positive multiple of 4), or "
        "the hidden layers of the mlp tower.",
    )
    repr_dim: int = option_field(
        64,
        "Size of the phi/psi representation the energy compares (OGBench: latent_dim 512).",
        minimum=1,
    )
    activation: str = option_field("swish", "Nonlinearity after every Dense layer.", ACTIVATIONS)
    layer_norm: bool = option_field(True, "LayerNorm after every Dense layer (paper: on).")
    actor_layer_norm: bool = option_field(
        True, "LayerNorm in the actor's tower too when layer_norm is on (OGBench's actor: off)."
    )
    residual: bool = option_field(
        True, "Skip connection around each block of 4 layers (paper: on; residual tower only)."
    )
    norm: str = option_field(
        "layernorm",
        "layernorm: the paper's tower (LayerNorm per the layer_norm switches); hyperspherical: "
        "SimbaV2-style, every block's output projected to the unit sphere after a learned "
        "interpolation with its input, learned scalers, unit-norm kernels (residual tower "
        "only; see docs/design.md).",
        NORMS,
    )
    residual_scale: str = option_field(
        "none",
        "Factor on each residual block's branch before the skip add: none (1) or inv-sqrt-blocks "
        "(1 / sqrt(number of blocks of that tower)).",
        RESIDUAL_SCALES,
    )
    remat: str = option_field(
        "auto",
        "Recompute each residual block's activations in the backward pass (less memory, ~1/3 "
        f"more FLOPs). auto: on at every depth on a CPU (faster there too), elsewhere on when "
        f"the deeper tower has >= {AUTO_REMAT_DEPTH} layers; see networks.resolve_remat.",
        REMAT_MODES,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("critic_depth", "actor_depth"):
            if self.tower == "residual":  # blocks of 4 layers
                check_depth(name, getattr(self, name))
            elif getattr(self, name) < 1:  # the mlp tower takes any depth >= 1
                value = getattr(self, name)
                raise ValueError(f"{name} must be a positive number of hidden layers, got {value}")
        if self.norm == "hyperspherical" and self.tower != "residual":
            raise ValueError("norm 'hyperspherical' needs tower 'residual', got 'mlp'")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Everything `crlkit.learner.update` needs besides the networks' input sizes."""

    network: NetworkConfig = dataclasses.field(
        default_factory=NetworkConfig, metadata={"help": "Tower shapes (see NetworkConfig)."}
    )
    num_critics: int = option_field(
        1,
        "Independent phi/psi pairs (OGBench: 2). The critic loss is their mean; the actor "
        "maximises the min over them.",
        minimum=1,
    )
    energy: str = option_field(
        "l2",
        "Critic energy f(s,a,g) between phi(s,a) and psi(g) (l2 = -||phi-psi||; mrn = MRN's "
        "quasimetric, -(||sym half difference|| + max(0, max of asym half difference))).",
        ENERGIES,
    )
    scale_energy: bool = option_field(
        False, "Divide the energy by sqrt(repr_dim) (OGBench: dot / sqrt(512))."
    )
    contrastive_loss: str = option_field(
        "fwd_infonce",
        "Critic loss over the B x B energy matrix (diagonal = positives).",
        CONTRASTIVE_LOSSES,
    )
    logsumexp_coef: float = option_field(
        0.1, "Weight of the mean(logsumexp_row^2) penalty added to InfoNCE losses.", minimum=0.0
    )
    actor_loss: str = option_field(
        "sac", "sac: entropy-regularised (online); ddpg_bc: Q plus behaviour cloning.", ACTOR_LOSSES
    )
    bc_alpha: float = option_field(
        0.1, "Behaviour-cloning weight of the ddpg_bc actor loss.", minimum=0.0
    )
    actor_dist: str = option_field(
        "tanh_gaussian",
        "tanh_gaussian: tanh(Gaussian) with a learned, squashed log_std; gaussian_const_std: "
        "OGBench's Gaussian with std 1 (no std parameters), Q taken at clip(mean, -1, 1), "
        "actions clipped to [-1, 1] (needs ddpg_bc).",
        ACTOR_DISTS,
    )
    target_entropy_scale: float = option_field(
        0.5, "SAC target entropy is -scale * action_dim (alpha is tuned toward it)."
    )
    actor_lr: float = option_field(3e-4, "Adam learning rate of the actor.", above=0.0)
    critic_lr: float = option_field(3e-4, "Adam learning rate of phi and psi.", above=0.0)
    alpha_lr: float = option_field(3e-4, "Adam learning rate of log alpha (sac only).", above=0.0)
    lr_schedule: str = option_field(
        "constant",
        "Learning-rate schedule of every network, over the run's SGD updates: constant; cosine "
        "(decays to 0 at the last update); linear-warmup (rises from 0 over the first 5% of "
        "the updates, then constant).",
        LR_SCHEDULES,
    )
    grad_clip_norm: float | None = option_field(
        None,
        "Clip each network's gradient (critic, actor, log alpha) to this global norm before "
        "Adam; unset: no clipping.",
        above=0.0,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.energy == "mrn" and self.network.repr_dim % 2:
            raise ValueError(
                f"energy 'mrn' splits repr_dim in halves: needs it even, got "
                f"{self.network.repr_dim}"
            )
        if self.actor_dist == "gaussian_const_std" and self.actor_loss != "ddpg_bc":
            raise ValueError(
                f"actor_dist 'gaussian_const_std' has no entropy to tune; it needs actor_loss "
                f"'ddpg_bc', got {self.actor_loss!r}"
            )


# ---- ready-made learners ----------------------------------------------------------------------


def ogbench_crl_learner(alpha: float) -> LearnerConfig:
    """OGBench's CRL agent (impls/agents/crl.py, DDPG+BC) with BC weight `alpha`.

    Two critics of phi/psi MLPs 512x3 (Dense -> GELU -> LayerNorm) with a 512 latent, logits
    phi.psi / sqrt(512), binary NCE averaged over B x B and both critics; actor MLP 512x3 without
    LayerNorm, Gaussian with constant std 1 whose Q action is clip(mean, -1, 1) under the min of
    the critics; loss -Q / stopgrad(mean|Q|) - alpha * log pi(a_data); Adam 3e-4. OGBench feeds
    the raw Q (its current code has no value_exp / actor_log_q). Its goals are full observations:
    build Dims with goal_dim = state_dim.
    """
    network = NetworkConfig(
        tower="mlp",
        width=512,
        critic_depth=3,
        actor_depth=3,
        repr_dim=512,
        activation="gelu",
        layer_norm=True,
        actor_layer_norm=False,
    )
    return LearnerConfig(
        network=network,
        num_critics=2,
        energy="dot",
        scale_energy=True,
        contrastive_loss="binary_nce",
        actor_loss="ddpg_bc",
        bc_alpha=alpha,
        actor_dist="gaussian_const_std",
    )


def quickstart_offline_learner() -> LearnerConfig:
    """`crlkit offline --preset quickstart`: the learner `crlkit online` trains (one critic, L2
    energy, InfoNCE, tanh Gaussian actor) with DDPG+BC, narrower towers (width QUICK_WIDTH) and
    a larger learning rate (QUICK_LR for actor and critic), chosen by a grid on the shipped
    sample (docs/benchmarks.md): it learns in a few CPU minutes, where OGBench's two-critic agent
    needs far more SGD steps."""
    network = NetworkConfig(width=QUICK_WIDTH)
    return LearnerConfig(
        network=network, actor_loss="ddpg_bc", actor_lr=QUICK_LR, critic_lr=QUICK_LR
    )


def paper_offline_learner(
    depth: int, alpha: float, width: int = 256, repr_dim: int = 64
) -> LearnerConfig:
    """OGBench's CRL agent with phi, psi and the actor swapped for the paper's residual towers.

    The agent stays OGBench's (two critics, dot / sqrt(repr_dim) energy, binary NCE, constant-std
    Gaussian actor, DDPG+BC with weight `alpha`); the towers are the paper's (residual blocks of
    Dense -> LayerNorm -> swish at `depth`, `width` 256, LayerNorm in the actor too, a 64-wide
    representation head).
    """
    base = ogbench_crl_learner(alpha)
    network = NetworkConfig(width=width, critic_depth=depth, actor_depth=depth, repr_dim=repr_dim)
    return dataclasses.replace(base, network=network)


# ---- config.json form ---------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (for config.json)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of `to_dict`: rebuild a (nested) config dataclass, validating it."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if nested is not None and dataclasses.is_dataclass(nested):
            kwargs[f.name] = from_dict(nested, data[f.name])
        else:
            kwargs[f.name] = data[f.name]
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}")
    return cls(**kwargs)
