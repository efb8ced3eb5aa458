"""The paper's Franka Panda scenes (push-easy, push-hard, binpick-hard), assembled with MjSpec.

The arm's kinematic skeleton (link offsets, link 1-5 frames, hand offset and rotation, finger
offset) is read from the Franka Panda that gymnasium-robotics ships under its Franka Kitchen assets
(MIT); everything that shapes the dynamics is set here to the values of the paper's scene files
(wang-kevin3290/scaling-crl envs/assets/panda_*.xml, MuJoCo Menagerie lineage) AS BRAX LOADS THEM:
brax's mjcf loader fuses joint-less bodies into their parent, so the hand (capsule + fingers) is
part of link 7 and, link 7 having an explicit inertial, the hand capsule adds no mass.

Only primitive geoms collide, and only through explicit contact pairs (as the paper's files):
cube vs table / hand / fingers (/ bin walls), table vs hand / fingers, finger vs finger (and hand /
fingers vs bin walls). No model file is copied; no mesh is loaded (the paper's meshes are visual).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import xml.etree.ElementTree as ET

import mujoco
import numpy as np

INSTALL_HINT = "pip install 'crlkit[arm]'"
# Joint 6 and 7 frames of the paper's (Menagerie) Panda; the kitchen Panda uses euler frames with a
# different joint-6/7 zero, so these two come from the paper's file.
PAPER_LINK6_QUAT = (1.0, 1.0, 0.0, 0.0)
PAPER_LINK7_QUAT = (1.0, 1.0, 0.0, 0.0)
# (name, range, armature-class) of the 7 arm joints; None = the class default +-2.8973.
JOINT_RANGES = (None, (-1.7628, 1.7628), None, (-3.0718, -0.0698), None, (-0.0175, 3.7525), None)
# (mass, com, fullinertia xx yy zz xy xz yz) of links 1-7 (the paper's file = Menagerie's).
LINK_INERTIALS = (
    (
        4.970684,
        (0.003875, 0.002081, -0.04762),
        (0.70337, 0.70661, 0.009117, -0.000139, 0.006772, 0.019169),
    ),  # noqa: E501
    (
        0.646926,
        (-0.003141, -0.02872, 0.003495),
        (0.007962, 0.02811, 0.025995, -0.003925, 0.010254, 0.000704),
    ),  # noqa: E501
    (
        3.228604,
        (0.027518, 0.039252, -0.066502),
        (0.037242, 0.036155, 0.01083, -0.004761, -0.011396, -0.012805),
    ),  # noqa: E501
    (
        3.587895,
        (-0.05317, 0.104419, 0.027454),
        (0.025853, 0.019552, 0.028323, 0.007796, -0.001332, 0.008641),
    ),  # noqa: E501
    (
        1.225946,
        (-0.011953, 0.041065, -0.038437),
        (0.035549, 0.029474, 0.008627, -0.002117, -0.004037, 0.000229),
    ),  # noqa: E501
    (
        1.666555,
        (0.060149, -0.014117, -0.010517),
        (0.001964, 0.004354, 0.005433, 0.000109, -0.001158, 0.000341),
    ),  # noqa: E501
    (
        0.735522,
        (0.010517, -0.004252, 0.061597),
        (0.012516, 0.010027, 0.004815, -0.000428, -0.001196, -0.000741),
    ),  # noqa: E501
)
# Position actuators as MuJoCo 'general' (gain kp, bias [0, -kp, -kv]); (kp, kv, force limit).
ARM_ACTUATORS = (
    (4500, 450, 87),
    (4500, 450, 87),
    (3500, 350, 87),
    (3500, 350, 87),
    (2000, 200, 12),
    (2000, 200, 12),
    (2000, 200, 12),
)
# Gains of the paper's file: actuators 3-7 have gain below their bias stiffness (2000 vs 3500,
# 1000 vs 2000; Menagerie has them equal), so those joints settle near 0.57 / 0.5 x ctrl.
ARM_GAINS = (4500, 4500, 2000, 2000, 1000, 1000, 1000)
FINGER_GAIN = 0.15686  # ctrl 0..255 -> target 0..0.08 m (the paper's finger range; JaxGCRL: 0.05)
CUBE_HALF = 0.03
BLUE, RED = (0, 0.2, 0.8, 1), (0.8, 0, 0, 1)  # start and goal bins
# Binpick walls: centred this far from the bin centre, this half thick, 0.066 high.
WALL_OFFSET, WALL_HALF, WALL_HEIGHT = 0.19, 0.005, 0.066


@dataclasses.dataclass(frozen=True)
class Scene:
    """What differs between the three scenes (the paper's panda_*.xml)."""

    cube_start: tuple[float, float, float]  # cube body position before noise
    bin_centres: tuple[tuple[float, float], tuple[float, float]]  # start (blue), goal (red)
    bin_half: float  # half size of the floor patches (push) or bins (binpick)
    walls: bool  # binpick: bins with 4 colliding walls each
    impratio: float


def kitchen_chain_path() -> str:
    """Path of gymnasium-robotics' Franka Kitchen Panda chain; ValueError naming the extra."""
    # find_spec locates the package without importing it (its import registers every env).
    found = importlib.util.find_spec("gymnasium_robotics")
    if found is None or not found.submodule_search_locations:
        raise ValueError(
            f"the arm envs need gymnasium-robotics (its Franka Panda model): {INSTALL_HINT}"
        )
    root = found.submodule_search_locations[0]
    path = os.path.join(root, "envs", "assets", "kitchen_franka", "franka_assets", "chain.xml")
    if not os.path.exists(path):
        raise ValueError(f"gymnasium-robotics has no Franka Panda at {path}; {INSTALL_HINT}")
    return path


def _vec(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split()) if text else default


def read_kitchen_skeleton() -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """(pos, quat) of link1..link7, the hand and the finger base from the kitchen Panda."""
    tree = ET.parse(kitchen_chain_path())
    bodies = {b.get("name"): b for b in tree.iter("body")}
    out = {}
    for i in range(1, 8):
        b = bodies[f"panda0_link{i}"]
        out[f"link{i}"] = (_vec(b.get("pos"), (0.0, 0.0, 0.0)), _vec(b.get("quat"), (1, 0, 0, 0)))
    hand = next(g for g in bodies["panda0_link7"].findall("geom") if g.get("mesh") == "hand_viz")
    out["hand"] = (_vec(hand.get("pos"), (0.0, 0.0, 0.0)), _vec(hand.get("quat"), (1, 0, 0, 0)))
    finger = _vec(bodies["panda0_leftfinger"].get("pos"), (0.0, 0.0, 0.0))
    out["finger"] = ((0.0, 0.0, finger[2] - out["hand"][0][2]), (1.0, 0.0, 0.0, 0.0))
    return out


def _add_arm(spec: mujoco.MjSpec, skel) -> None:
    """Links 1-7, the hand and two fingers fused into link 7 (as brax loads the paper's file)."""
    parent = spec.worldbody
    for i in range(1, 8):
        pos, quat = skel[f"link{i}"]
        if i == 6:
            quat = PAPER_LINK6_QUAT
        if i == 7:
            quat = PAPER_LINK7_QUAT
        mass, com, full = LINK_INERTIALS[i - 1]
        body = parent.add_body(name=f"link{i}", pos=pos, quat=quat, mass=mass, ipos=com)
        body.fullinertia = full
        body.explicitinertial = True
        # brax drops link0's childclass when it fuses link0 into the world, so the paper's arm
        # joints have no armature, no damping, and only joints 2, 4, 6 (explicit ranges) limits.
        joint = body.add_joint(name=f"joint{i}", axis=[0, 0, 1])
        if JOINT_RANGES[i - 1] is not None:
            joint.range = JOINT_RANGES[i - 1]
        parent = body
    # brax fuses the joint-less hand into link 7: its geom and the fingers sit in link 7's frame.
    hand_pos, hand_quat = (np.asarray(v, np.float64) for v in skel["hand"])
    hand_quat /= np.linalg.norm(hand_quat)
    parent.add_geom(
        name="hand_geom",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.04, 0.06, 0],
        pos=hand_pos + _rotate(hand_quat, [0, 0, 0.035]),
        quat=_mul(hand_quat, [1, 1, 0, 0]),
        contype=0,
        conaffinity=0,
    )
    finger_pos = hand_pos + _rotate(hand_quat, skel["finger"][0])
    for side, quat in (("left", (1, 0, 0, 0)), ("right", (0, 0, 0, 1))):
        f = parent.add_body(
            name=f"{side}_finger",
            pos=finger_pos,
            quat=_mul(hand_quat, quat),
            mass=0.015,
            ipos=[0, 0, 0],
            iquat=[1, 0, 0, 0],
        )
        f.inertia = [2.375e-6, 2.375e-6, 7.5e-7]
        f.explicitinertial = True
        f.add_joint(
            name=f"finger_joint{1 if side == 'left' else 2}",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, 1, 0],
            range=[0, 0.08],
            armature=0.1,
            damping=5.0,
        )
        f.add_geom(
            name=f"{side}_finger_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.015, 0.005, 0.04],
            pos=[0, 0.0055, 0.035],
            friction=[10, 0.005, 0.0001],
            contype=0,
            conaffinity=0,
        )


def _rotate(quat, vec) -> np.ndarray:
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, np.asarray(vec, np.float64), np.asarray(quat, np.float64))
    return out


def _mul(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, a / np.linalg.norm(a), b / np.linalg.norm(b))
    return out


def _add_actuators(spec: mujoco.MjSpec) -> None:
    for i, ((_, kv, force), kp) in enumerate(zip(ARM_ACTUATORS, ARM_GAINS, strict=True)):
        bias_kp = ARM_ACTUATORS[i][0]
        rng = JOINT_RANGES[i] or (-2.8973, 2.8973)
        _general(spec, f"actuator{i + 1}", f"joint{i + 1}", kp, (0, -bias_kp, -kv), rng, force)
    for j in (1, 2):
        _general(
            spec, f"actuator{7 + j}", f"finger_joint{j}", FINGER_GAIN, (0, -500, -50), (0, 255), 500
        )


def _general(spec, name, joint, gain, bias, ctrlrange, force) -> None:
    act = spec.add_actuator(name=name, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
    act.dyntype = mujoco.mjtDyn.mjDYN_NONE
    act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    act.gainprm[0] = gain
    act.biasprm[:3] = bias
    act.ctrlrange = ctrlrange
    act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    act.forcerange = (-force, force)
    act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE


def _add_world(spec: mujoco.MjSpec, scene: Scene) -> list[str]:
    """Table, bins or floor patches and the cube; returns the names of colliding bin walls."""
    w = spec.worldbody
    w.add_geom(
        name="table_geom",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        pos=[0, 0.2, 0],
        size=[2.8, 2.4, 0.1],
        friction=[0.2, 0.005, 0.0001],
        contype=0,
        conaffinity=0,
    )
    walls = []
    h = scene.bin_half
    for tag, (x, y), rgba in zip("AB", scene.bin_centres, (BLUE, RED), strict=True):
        if not scene.walls:  # push: a flat coloured patch on the table, for rendering only
            w.add_geom(
                name=f"bin{tag}_floor",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                rgba=rgba,
                pos=[x, y, 0.0005],
                size=[h, h, 0.0005],
                contype=0,
                conaffinity=0,
            )
            continue
        # binpick: four walls (the paper's: 0.066 high, 0.01 thick, 0.19 from the bin centre).
        o, t, long = WALL_OFFSET, WALL_HALF, WALL_OFFSET + WALL_HALF
        for k, (dx, dy, sx, sy) in enumerate(
            ((0, -o, long, t), (0, o, long, t), (o, 0, t, o - t), (-o, 0, t, o - t))
        ):
            name = f"bin{tag}{k + 1}"
            w.add_geom(
                name=name,
                type=mujoco.mjtGeom.mjGEOM_BOX,
                rgba=rgba,
                pos=[x + dx, y + dy, WALL_HEIGHT / 2],
                size=[sx, sy, WALL_HEIGHT / 2],
                contype=0,
                conaffinity=0,
            )
            walls.append(name)
    cube = w.add_body(name="cube", pos=scene.cube_start)
    cube.add_freejoint()
    cube.add_geom(
        name="cube_geom",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[CUBE_HALF] * 3,
        rgba=[0, 0.4, 0, 1],
        contype=0,
        conaffinity=0,
    )
    return walls


def _add_pairs(spec: mujoco.MjSpec, walls: list[str]) -> None:
    """The paper's explicit contact pairs (nothing else collides)."""
    gripper = ("hand_geom", "left_finger_geom", "right_finger_geom")
    pairs = [("cube_geom", "table_geom"), *(("cube_geom", g) for g in gripper)]
    pairs += [("cube_geom", w) for w in walls]
    pairs += [("table_geom", g) for g in gripper]
    pairs += [(g, w) for g in ("left_finger_geom", "right_finger_geom", "hand_geom") for w in walls]
    pairs.append(("left_finger_geom", "right_finger_geom"))
    for a, b in pairs:
        spec.add_pair(geomname1=a, geomname2=b)


def build_scene(scene: Scene) -> mujoco.MjModel:
    """The compiled scene: the paper's options, arm, actuators, world, contact pairs, sensor."""
    spec = mujoco.MjSpec()
    spec.compiler.autolimits = True
    spec.compiler.degree = False
    opt = spec.option
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # The paper's env sets these on top of the file (ArmEnvs: timestep, iterations, ls_iterations).
    opt.timestep, opt.iterations, opt.ls_iterations = 0.002, 6, 12
    opt.impratio = scene.impratio
    _add_arm(spec, read_kitchen_skeleton())
    _add_actuators(spec)
    walls = _add_world(spec, scene)
    _add_pairs(spec, walls)
    spec.add_equality(
        type=mujoco.mjtEq.mjEQ_JOINT,
        name1="finger_joint1",
        name2="finger_joint2",
        objtype=mujoco.mjtObj.mjOBJ_JOINT,
        solimp=[0.95, 0.99, 0.001, 0.5, 2],
        solref=[0.005, 1],
    )
    # Velocity of link 7's frame origin (brax's xd.vel of the end-effector body), world frame.
    spec.add_sensor(
        name="eef_linvel",
        type=mujoco.mjtSensor.mjSENS_FRAMELINVEL,
        objtype=mujoco.mjtObj.mjOBJ_XBODY,
        objname="link7",
    )
    return spec.compile()


def published_link_offsets(model: mujoco.MjModel) -> np.ndarray:
    """Body offsets of link1..link7 (for checking against the Panda's published kinematics)."""
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"link{i}") for i in range(1, 8)]
    return np.asarray(model.body_pos[ids])
