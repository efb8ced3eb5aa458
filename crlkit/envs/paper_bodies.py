"""The paper's ant and humanoid (Brax's bodies), built from gymnasium's installed MuJoCo models.

wang-kevin3290/scaling-crl trains on Brax's `ant` and `humanoid` (the gym models edited for Brax)
with Brax's spring pipeline. Here the same models are built with MjSpec from the gym XML files that
ship in the installed `gymnasium` package, and every value the paper's (Brax's) files change is set
in code below: integrator, solver iterations, contact flags, foot spheres (ant), tendons removed and
jointless feet fused into the shins (humanoid, as Brax's loader fuses them), the spring gears and
time steps, Brax's spring parameters (`<custom>` numerics, read by brax.io.mjcf) and the humanoid's
target body (two slide joints whose coordinates are part of the paper's 268-dim state).

The same model, frame skip, control scaling and observation are used on every backend, so a
policy sees the paper's spring task whatever steps the physics (docs/envs.md lists the
differences from the paper's non-spring settings).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import mujoco

from crlkit.envs.backends.base import PhysicsState
from crlkit.envs.bodies import Body
from crlkit.envs.maze import add_target

ANT_TIMESTEP, ANT_FRAMES = 0.005, 10  # the paper's ant on spring: 0.05 s per control step
HUMANOID_TIMESTEP, HUMANOID_FRAMES = 0.0015, 10  # the paper's humanoid on spring: 0.015 s
HUMANOID_SPRING_GEAR = (350.0,) * 11 + (100.0,) * 6  # abdomen + legs, then arms (actuator order)
HUMANOID_TARGET_Z = 1.25  # the paper's fixed goal height (torso height when standing)
HUMANOID_CTRL_SCALE = 0.4  # actions in [-1, 1] map onto the motors' ctrlrange [-0.4, 0.4]

# Brax's spring-pipeline parameters, from its ant.xml / humanoid.xml `<custom>` blocks.
ANT_SPRING_NUMERICS = {
    "constraint_limit_stiffness": 1000.0,
    "constraint_stiffness": 4000.0,
    "constraint_ang_damping": 10.0,
    "constraint_vel_damping": 20.0,
    "joint_scale_pos": 0.5,
    "joint_scale_ang": 0.2,
    "ang_damping": 0.0,
    "spring_mass_scale": 1.0,
    "spring_inertia_scale": 1.0,
    "solver_maxls": 15.0,
}
HUMANOID_SPRING_NUMERICS = {
    "constraint_limit_stiffness": 2500.0,
    "constraint_stiffness": 27000.0,
    "constraint_ang_damping": 30.0,
    "constraint_vel_damping": 80.0,
    "ang_damping": -0.05,
    "joint_scale_pos": 0.5,
    "joint_scale_ang": 0.1,
    "spring_mass_scale": 0.0,
    "spring_inertia_scale": 1.0,
    "matrix_inv_iterations": 20.0,
    "solver_maxls": 15.0,
}
# Foot spheres Brax adds at the end of each ant leg: (lower-leg geom, position in its body).
ANT_FEET = {
    "left_foot_geom": ("left_ankle_geom", (0.4, 0.4, 0.0)),
    "right_foot_geom": ("right_ankle_geom", (-0.4, 0.4, 0.0)),
    "third_foot_geom": ("third_ankle_geom", (-0.4, -0.4, 0.0)),
    "fourth_foot_geom": ("fourth_ankle_geom", (0.4, -0.4, 0.0)),
}
# Ant geoms that also touch maze walls in the paper's ant_maze.xml (conaffinity 1).
ANT_MAZE_GEOMS = ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom", *ANT_FEET)


def gym_asset(name: str) -> str:
    """Path of one of the MuJoCo models shipped in the installed gymnasium package."""
    import gymnasium

    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", name)


def _add_numerics(spec: mujoco.MjSpec, values: dict[str, float]) -> None:
    for name, value in values.items():
        spec.add_numeric(name=name, data=[value])


def _add_materials(spec: mujoco.MjSpec) -> None:
    """The materials crlkit's maze walls and goal marker name (colours only)."""
    spec.add_material(name="wall", rgba=[0.7, 0.5, 0.3, 1.0])
    spec.add_material(name="target", rgba=[1.0, 0.3, 0.3, 0.7])


def _robot_geoms(spec: mujoco.MjSpec) -> list:
    return [g for g in spec.geoms if g.name != "floor"]


def ant_spec(maze: bool) -> mujoco.MjSpec:
    """Brax's ant (as the paper's envs/assets/ant.xml, target body left out: it never touches the
    ant and is not observed) from gymnasium's ant.xml."""
    spec = mujoco.MjSpec.from_file(gym_asset("ant.xml"))
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER  # gym: RK4; Brax: Euler
    spec.option.iterations = 4
    spec.option.timestep = ANT_TIMESTEP
    spec.compiler.fusestatic = True  # Brax's loader fuses the jointless leg bodies into the torso
    for geom in _robot_geoms(spec):
        # Brax: only the foot spheres collide with the floor; gym: every geom, with a margin.
        geom.contype, geom.conaffinity, geom.margin = 0, 0, 0.0
    for name, (leg, pos) in ANT_FEET.items():
        spec.geom(leg).parent.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_SPHERE,
            size=[0.08, 0, 0],
            pos=list(pos),
            mass=0.0,
            contype=1,
            conaffinity=0,
            condim=3,
            friction=[1.0, 0.5, 0.5],
        )
    if maze:
        for name in ANT_MAZE_GEOMS:
            spec.geom(name).conaffinity = 1
    _add_numerics(spec, ANT_SPRING_NUMERICS)
    _add_materials(spec)
    add_target(spec)
    return spec


def humanoid_spec(maze: bool) -> mujoco.MjSpec:
    """Brax's humanoid with the paper's target body (envs/assets/humanoid.xml of the paper), from
    gymnasium's humanoid.xml; the spring gears and time step are set here."""
    spec = mujoco.MjSpec.from_file(gym_asset("humanoid.xml"))
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER  # gym: RK4, PGS, 50 iterations
    spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON
    spec.option.iterations = 8
    spec.option.timestep = HUMANOID_TIMESTEP
    spec.compiler.fusestatic = True  # Brax's loader fuses the jointless feet into the shins
    for tendon in list(spec.tendons):  # Brax's humanoid has no hip-knee tendons
        spec.delete(tendon)
    for geom in _robot_geoms(spec):
        geom.contype, geom.conaffinity, geom.condim, geom.margin = 1, 0, 3, 0.0
    spec.geom("floor").size = [40.0, 40.0, 0.125]
    for actuator, gear in zip(spec.actuators, HUMANOID_SPRING_GEAR, strict=True):
        actuator.gear = [gear, 0, 0, 0, 0, 0]
    target = spec.worldbody.add_body(name="target", pos=[0.0, 0.0, HUMANOID_TARGET_Z])
    reach = 100.0 if maze else 20.0
    for name, axis in (("target_x", [1, 0, 0]), ("target_y", [0, 1, 0])):
        target.add_joint(
            name=name,
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=axis,
            range=[-reach, reach],
            limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            armature=0.0,
            damping=0.0,
            stiffness=0.0,
        )
    target.add_geom(
        name="target",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[0.5, 0, 0],
        mass=1.0,
        contype=0,
        conaffinity=0,
    )
    _add_numerics(spec, HUMANOID_SPRING_NUMERICS)
    _add_materials(spec)
    _add_link_sensors(spec)
    return spec


def _add_link_sensors(spec: mujoco.MjSpec) -> None:
    """Per moving body: centre-of-mass position, its linear and the body's angular velocity (world
    frame), which the paper's observation reads; every backend fills sensordata with them."""
    kinds = (
        mujoco.mjtSensor.mjSENS_FRAMEPOS,
        mujoco.mjtSensor.mjSENS_FRAMELINVEL,
        mujoco.mjtSensor.mjSENS_FRAMEANGVEL,
    )
    for body in spec.bodies[1:]:
        if body.name in ("left_foot", "right_foot"):
            continue  # fused into the shins
        for kind in kinds:
            spec.add_sensor(
                type=kind,
                objtype=mujoco.mjtObj.mjOBJ_BODY,
                objname=body.name,
                name=f"{body.name}_{int(kind)}",
            )


@dataclasses.dataclass(frozen=True)
class PaperAnt(Body):
    """The paper's ant: state = qpos (15, torso xyz first) + qvel (14); goal torso xy; reset at
    Brax's init_qpos with uniform noise 0.1 on qpos and 0.1 N(0, 1) on qvel."""

    def build_spec(self, maze: bool) -> mujoco.MjSpec:
        return ant_spec(maze)

    def observe(self, physics: PhysicsState, ids: dict[str, int], ctrl=None) -> jax.Array:
        return jnp.concatenate([physics.qpos, physics.qvel])

    def state_dim(self, model: mujoco.MjModel) -> int:
        return model.nq + model.nv

    def reset_qpos_qvel(self, key, qpos0, model):
        kq, kv = jax.random.split(key)
        init = jnp.asarray(_numeric(model, "init_qpos"), jnp.float32)
        qpos = init + jax.random.uniform(kq, init.shape, minval=-0.1, maxval=0.1)
        return qpos, 0.1 * jax.random.normal(kv, (model.nv,))


@dataclasses.dataclass(frozen=True)
class PaperHumanoid(Body):
    """The paper's humanoid: 268-dim state (qpos 26, qvel 25, per-link inertia 12 x 10 and
    velocity 12 x 6 as Brax's spring humanoid computes them, actuator forces 25), goal torso xyz
    against a target at z 1.25; reset exactly at the model's pose (the paper's noise is 0)."""

    def build_spec(self, maze: bool) -> mujoco.MjSpec:
        return humanoid_spec(maze)

    def goal_of_xy(self, goal_xy: jax.Array) -> jax.Array:
        return jnp.concatenate([goal_xy, jnp.asarray([HUMANOID_TARGET_Z], goal_xy.dtype)])

    def achieved_goal(self, physics: PhysicsState) -> jax.Array:
        return physics.qpos[:3]

    def place(self, qpos: jax.Array, start_xy: jax.Array, goal_xy: jax.Array) -> jax.Array:
        # The target body's slide joints (last two qpos) sit at the goal, as the paper's reset.
        return qpos.at[:2].set(start_xy).at[-2:].set(goal_xy)

    def control(self, physics: PhysicsState, action: jax.Array) -> tuple[PhysicsState, jax.Array]:
        return physics, HUMANOID_CTRL_SCALE * action

    def observe(self, physics: PhysicsState, ids: dict[str, int], ctrl=None) -> jax.Array:
        return humanoid_observation(
            physics, self.link_mass, self.actuator_gear, self.actuator_dof, ctrl
        )

    def state_dim(self, model: mujoco.MjModel) -> int:
        links = model.nbody - 1
        return model.nq + 2 * model.nv + links * 16

    def reset_qpos_qvel(self, key, qpos0, model):
        return qpos0, jnp.zeros((model.nv,), jnp.float32)

    # Static model facts the observation needs, filled by `with_model`.
    link_mass: tuple[float, ...] = ()
    actuator_gear: tuple[float, ...] = ()
    actuator_dof: tuple[int, ...] = ()
    nv: int = 0
    # The state holds the target's slide joints and its mass in the centre of mass.
    observes_goal_marker: ClassVar[bool] = True

    def with_model(self, model: mujoco.MjModel) -> PaperHumanoid:
        """This body with the compiled model's masses, gears and actuated dofs recorded."""
        return dataclasses.replace(
            self,
            link_mass=tuple(float(m) for m in model.body_mass[1:]),
            actuator_gear=tuple(float(g) for g in model.actuator_gear[:, 0]),
            actuator_dof=tuple(int(model.jnt_dofadr[j]) for j in model.actuator_trnid[:, 0]),
            nv=int(model.nv),
        )

    def keep_control_terms(self, state: jax.Array, previous: jax.Array) -> jax.Array:
        """The last `nv` entries are the actuator forces of the last control."""
        return state.at[-self.nv :].set(previous[-self.nv :])


def humanoid_observation(physics: PhysicsState, link_mass, gear, dof, ctrl) -> jax.Array:
    """The paper's humanoid state (Brax humanoid `_get_obs` with spring's unit link inertia).

    Spring scales each link's inertia to diag(diag(I) ** (1 - spring_inertia_scale)) = identity
    (scale 1), so the per-link inertia about the centre of mass is I + m (|p|^2 I - p p^T).
    """
    mass = jnp.asarray(link_mass, jnp.float32)
    links = mass.shape[0]
    sensors = physics.sensordata.reshape(links, 3, 3)  # [link, (com pos, com vel, ang vel), xyz]
    com_pos, com_vel, ang_vel = sensors[:, 0], sensors[:, 1], sensors[:, 2]
    total = jnp.sum(mass)
    com = jnp.sum(mass[:, None] * com_pos, axis=0) / total
    p = com_pos - com
    eye = jnp.eye(3, dtype=jnp.float32)
    shift = jnp.sum(p * p, -1)[:, None, None] * eye - p[:, :, None] * p[:, None, :]
    inertia = eye + mass[:, None, None] * shift
    com_inertia = jnp.concatenate([inertia.reshape(links, 9), mass[:, None]], axis=1)
    com_velocity = jnp.concatenate([mass[:, None] * com_vel / total, ang_vel], axis=1)
    nv = physics.qvel.shape[0]
    if ctrl is None:
        ctrl = jnp.zeros((len(gear),), jnp.float32)
    ctrl = jnp.clip(ctrl, -HUMANOID_CTRL_SCALE, HUMANOID_CTRL_SCALE)
    tau = jnp.zeros((nv,), jnp.float32).at[jnp.asarray(dof)].add(jnp.asarray(gear) * ctrl)
    return jnp.concatenate(
        [physics.qpos, physics.qvel, com_inertia.ravel(), com_velocity.ravel(), tau]
    )


def _numeric(model: mujoco.MjModel, name: str):
    """The data of a custom numeric of a compiled model."""
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, name)
    adr, size = model.numeric_adr[i], model.numeric_size[i]
    return model.numeric_data[adr : adr + size]


PAPER_BODIES: dict[str, Body] = {
    "paper_ant": PaperAnt(
        name="ant", xml="ant.xml", action_dim=8, frame_skip=ANT_FRAMES, family="paper"
    ),
    "paper_humanoid": PaperHumanoid(
        name="humanoid",
        xml="humanoid.xml",
        action_dim=17,
        frame_skip=HUMANOID_FRAMES,
        goal_indices=(0, 1, 2),
        family="paper",
    ),
}
