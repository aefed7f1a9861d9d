"""Checks of the Databricks Asset Bundle (databricks.yml and resources/) without a workspace.

The job resources are validated with the models of the `databricks-bundles` package,
which reject unknown fields, wrong enum values and missing required fields. The rest is
checked by hand: variables, targets, the wheel's entry point, the parameters the task
passes to it, and the runtime version against the PySpark the tests use.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from databricks.bundles.core import Bundle, Variable
from databricks.bundles.jobs import Job, JobRunAs
from packaging.requirements import Requirement

from deploy_files import REPO_ROOT
from playtest_spark.config import JobConfig
from playtest_spark.entry import PARAMETERS, build_parser, main, parse_config
from playtest_spark.errors import ConfigError
from playtest_spark.sql import azure

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEPLOY_GUIDE = REPO_ROOT / "docs" / "deploy.md"
JOB = "playtest_daily"

# Databricks Runtime -> the Spark, Scala and Delta Lake versions (major.minor) it ships.
# Add a row before moving the job to another runtime.
DATABRICKS_RUNTIMES = {
    "17.3": {"spark": "4.0", "scala": "2.13", "delta": "4.0"},
}
# Requirements of the `job` extra that a task library must not install on Databricks.
PROVIDED_BY_RUNTIME = {"pyspark", "delta-spark", "pyarrow", "pandas"}
# Requirements of the `job` extra that only local tests use (a PostgreSQL server).
NOT_NEEDED_ON_DATABRICKS = {"psycopg"}

# Variables that have no value in the bundle for a target and must be given at deploy
# time (`--var` or BUNDLE_VAR_<name>); the CLI stops when one is missing.
REQUIRED_AT_DEPLOY = {
    "dev": {"landing", "sql_server", "sql_database"},
    "prod": {"landing", "sql_server", "sql_database", "notification_email"},
}
SAMPLE_DEPLOY_VALUES = {
    "landing": "/Volumes/playtest/landing/files",
    "sql_server": "sql-playtest.database.windows.net",
    "sql_database": "sqldb-playtest",
    "notification_email": "data-team@studio.example",
}
# Values the Databricks CLI fills in for `${...}` references other than variables.
SAMPLE_SUBSTITUTIONS = {
    "bundle.name": "playtest",
    "workspace.current_user.short_name": "ada_lovelace",
    "workspace.current_user.userName": "ada.lovelace@studio.example",
    "workspace.file_path": "/Workspace/Shared/.bundle/playtest/prod/files",
}
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
DYNAMIC_REFERENCE = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


# -- helpers ----------------------------------------------------------------------------


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def variables_used(bundle: dict[str, Any]) -> set[str]:
    texts = strings_in({key: value for key, value in bundle.items() if not key.startswith("_")})
    return {
        reference[len("var."):]
        for text in texts
        for reference in REFERENCE.findall(text)
        if reference.startswith("var.")
    }


def target_values(bundle: dict[str, Any], target: str) -> dict[str, Any]:
    """Return each variable's unresolved value for `target`: a default, a target value,
    a `("lookup", spec)` pair, or None when the bundle gives none."""
    values: dict[str, Any] = {}
    for name, spec in bundle["variables"].items():
        values[name] = ("lookup", spec["lookup"]) if "lookup" in spec else spec.get("default")
    for name, override in (bundle["targets"][target].get("variables") or {}).items():
        if isinstance(override, dict) and "lookup" in override:
            values[name] = ("lookup", override["lookup"])
        elif isinstance(override, dict):
            values[name] = override.get("default")
        else:
            values[name] = override
    return values


def substitute(text: str, known: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        path = match.group(1)
        if path not in known:
            raise KeyError(f"unresolved reference ${{{path}}} in {text!r}")
        return str(known[path])

    return REFERENCE.sub(replace, text)


def resolve_variables(bundle: dict[str, Any], target: str, deploy_values: dict[str, str]) -> dict[str, str]:
    """Resolve every variable for `target` as the CLI would; a lookup becomes a marker."""
    raw = target_values(bundle, target)
    for name, value in deploy_values.items():
        if raw.get(name) is None:
            raw[name] = value
    known: dict[str, Any] = dict(SAMPLE_SUBSTITUTIONS, **{"bundle.target": target})
    resolved: dict[str, str] = {}
    for _ in range(len(raw) + 1):
        for name, value in raw.items():
            if name in resolved or value is None:
                continue
            try:
                if isinstance(value, tuple):
                    (kind, lookup_name), = value[1].items()
                    resolved[name] = f"<{kind} {substitute(lookup_name, known)}>"
                else:
                    resolved[name] = substitute(str(value), known)
            except KeyError:
                continue
            known[f"var.{name}"] = resolved[name]
    return resolved


def render(value: Any, known: dict[str, Any], job_parameters: dict[str, str]) -> Any:
    """Substitute `${...}` and `{{job.parameters.*}}` references in a YAML value."""
    if isinstance(value, dict):
        return {key: render(item, known, job_parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, known, job_parameters) for item in value]
    if not isinstance(value, str):
        return value

    def replace_dynamic(match: re.Match[str]) -> str:
        reference = match.group(1)
        assert reference.startswith("job.parameters."), f"unexpected dynamic reference {reference!r}"
        return job_parameters[reference[len("job.parameters."):]]

    return DYNAMIC_REFERENCE.sub(replace_dynamic, substitute(value, known))


def job(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["resources"]["jobs"][JOB]


def wheel_tasks(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        task
        for job_spec in bundle["resources"]["jobs"].values()
        for task in job_spec["tasks"]
        if "python_wheel_task" in task
    ]


def rendered_task(bundle: dict[str, Any], target: str, run_date: str) -> tuple[dict, dict, dict]:
    """Return the job, its wheel task and the resolved variables for `target`."""
    variables = resolve_variables(bundle, target, SAMPLE_DEPLOY_VALUES)
    known = dict(SAMPLE_SUBSTITUTIONS, **{"bundle.target": target})
    known.update({f"var.{name}": value for name, value in variables.items()})
    job_spec = job(bundle)
    defaults = {p["name"]: render(p["default"], known, {}) for p in job_spec["parameters"]}
    rendered_job = render(job_spec, known, dict(defaults, run_date=run_date))
    return rendered_job, rendered_job["tasks"][0], variables


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cluster_environment(rendered_job: dict[str, Any]) -> dict[str, str]:
    cluster = rendered_job["job_clusters"][0]["new_cluster"]
    return dict(cluster.get("spark_env_vars") or {})


# -- structure and models ---------------------------------------------------------------


def test_bundle_includes_job_resource_file(bundle):
    names = [path.name for path in bundle["_included_files"]]
    assert "playtest_daily.job.yml" in names
    assert JOB in bundle["resources"]["jobs"]


def test_jobs_validate_with_databricks_bundles_models(bundle):
    for name, spec in bundle["resources"]["jobs"].items():
        model = Job.from_dict(spec)
        assert model.tasks, f"job {name} has no task"


def test_bundle_models_reject_unknown_job_field(bundle):
    spec = dict(job(bundle), max_concurrent_run=1)
    with pytest.raises(ValueError, match="max_concurrent_run"):
        Job.from_dict(spec)


def test_prod_run_as_validates_with_bundle_model(bundle):
    run_as = JobRunAs.from_dict(bundle["targets"]["prod"]["run_as"])
    assert isinstance(run_as.service_principal_name, Variable)
    assert run_as.service_principal_name.path == "var.service_principal_id"
    assert run_as.user_name is None


def test_wheel_artifact_builds_from_pyproject(bundle):
    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert (REPO_ROOT / artifact["path"] / "pyproject.toml").is_file()
    assert "--wheel-dir dist" in artifact["build"]
    for task in wheel_tasks(bundle):
        wheels = [library["whl"] for library in task["libraries"] if "whl" in library]
        # Library paths are relative to the resource file, which lives in resources/.
        assert [Path("resources", wheel).as_posix() for wheel in wheels] == ["resources/../dist/*.whl"]


# -- variables and targets --------------------------------------------------------------


def test_every_used_variable_is_defined(bundle):
    undefined = variables_used(bundle) - set(bundle["variables"])
    assert not undefined, f"used but not defined: {sorted(undefined)}"


def test_every_defined_variable_is_used(bundle):
    unused = set(bundle["variables"]) - variables_used(bundle)
    assert not unused, f"defined but never used: {sorted(unused)}"


def test_every_variable_has_a_description(bundle):
    for name, spec in bundle["variables"].items():
        assert spec.get("description"), f"variable {name} has no description"


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_variables_without_value_are_the_deploy_time_ones(bundle, target):
    missing = {name for name, value in target_values(bundle, target).items() if value is None}
    assert missing == REQUIRED_AT_DEPLOY[target]


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_every_variable_resolves_for_target(bundle, target):
    resolved = resolve_variables(bundle, target, SAMPLE_DEPLOY_VALUES)
    assert set(resolved) == set(bundle["variables"])


def test_deploy_time_variables_are_documented(bundle):
    guide = DEPLOY_GUIDE.read_text(encoding="utf-8")
    for name in set().union(*REQUIRED_AT_DEPLOY.values()):
        assert f"BUNDLE_VAR_{name}" in guide, f"docs/deploy.md does not explain BUNDLE_VAR_{name}"


def test_targets_are_dev_and_prod(bundle):
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["targets"]["dev"].get("default") is True


def test_dev_target_uses_per_user_schema(bundle):
    dev = bundle["targets"]["dev"]
    assert dev["mode"] == "development"
    assert "${workspace.current_user.short_name}" in dev["variables"]["schema"]
    resolved = resolve_variables(bundle, "dev", SAMPLE_DEPLOY_VALUES)
    assert resolved["schema"] != resolve_variables(bundle, "prod", SAMPLE_DEPLOY_VALUES)["schema"]


def test_prod_target_pins_root_path_and_identity(bundle):
    prod = bundle["targets"]["prod"]
    assert prod["mode"] == "production"
    assert prod["workspace"]["root_path"].startswith("/Workspace/Shared/")
    assert "${workspace.current_user" not in prod["workspace"]["root_path"]
    assert prod["variables"]["service_principal_id"] == {
        "lookup": {"service_principal": "${var.service_principal_name}"}
    }
    for grant in prod["permissions"]:
        assert grant["level"] in {"CAN_VIEW", "CAN_RUN", "CAN_MANAGE"}


def test_resolved_variables_feed_bundle_model(bundle):
    model = Job.from_dict(job(bundle))
    for target in ("dev", "prod"):
        variables = resolve_variables(bundle, target, SAMPLE_DEPLOY_VALUES)
        resolved = Bundle(target=target, variables=variables)
        node_type = resolved.resolve_variable(model.job_clusters[0].new_cluster.node_type_id)
        assert re.fullmatch(r"Standard_\w+", node_type)


# -- entry point and parameters ---------------------------------------------------------


def test_wheel_task_entry_point_is_a_console_script(bundle):
    scripts = PYPROJECT["project"]["scripts"]
    for task in wheel_tasks(bundle):
        wheel_task = task["python_wheel_task"]
        assert normalize_name(wheel_task["package_name"]) == normalize_name(PYPROJECT["project"]["name"])
        target = scripts.get(wheel_task["entry_point"])
        assert target is not None, f"no [project.scripts] entry {wheel_task['entry_point']!r}"
        module_name, _, attribute = target.partition(":")
        function = importlib.import_module(module_name)
        for part in attribute.split("."):
            function = getattr(function, part)
        assert callable(function)


def test_installed_metadata_has_wheel_entry_point(bundle):
    for task in wheel_tasks(bundle):
        wheel_task = task["python_wheel_task"]
        distribution = importlib.metadata.distribution(wheel_task["package_name"])
        entry_points = {point.name: point.value for point in distribution.entry_points}
        assert entry_points.get(wheel_task["entry_point"]) == PYPROJECT["project"]["scripts"][
            wheel_task["entry_point"]
        ], "installed metadata is stale: reinstall the package (pip install -e .)"


def test_task_uses_positional_parameters(bundle):
    for task in wheel_tasks(bundle):
        assert not task["python_wheel_task"].get("named_parameters"), (
            "named parameters would also receive every job parameter under its own name"
        )


def test_job_parameters_reach_entry_point_under_same_names(bundle):
    parameters = job(bundle)["parameters"]
    arguments = job(bundle)["tasks"][0]["python_wheel_task"]["parameters"]
    for parameter in parameters:
        name = parameter["name"]
        pattern = re.compile(r"--([a-z-]+)=\{\{job\.parameters\." + re.escape(name) + r"\}\}")
        flags = [match.group(1) for argument in arguments if (match := pattern.fullmatch(argument))]
        assert len(flags) == 1, f"job parameter {name} is passed {len(flags)} times"
        assert PARAMETERS.get(flags[0]) == name, f"--{flags[0]} does not set JobConfig.{name}"


def test_dynamic_references_name_job_parameters(bundle):
    declared = {parameter["name"] for parameter in job(bundle)["parameters"]}
    for text in strings_in(job(bundle)):
        for reference in DYNAMIC_REFERENCE.findall(text):
            assert reference.startswith("job.parameters."), f"unexpected reference {reference!r}"
            assert reference[len("job.parameters."):] in declared


def test_every_task_option_is_an_entry_point_option(bundle):
    parser_options = {f"--{name}" for name in PARAMETERS} | {"--secret-scope"}
    for task in wheel_tasks(bundle):
        for argument in task["python_wheel_task"]["parameters"]:
            option = argument.partition("=")[0]
            assert option in parser_options, f"{option} is not an option of the entry point"


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_task_parameters_build_valid_config(bundle, target):
    rendered_job, task, variables = rendered_task(bundle, target, run_date="2026-02-28")
    arguments = vars(build_parser().parse_args(task["python_wheel_task"]["parameters"]))
    assert arguments.pop("secret_scope") == variables["secret_scope"]
    options = {key: value for key, value in arguments.items() if value not in (None, "")}
    config = JobConfig.from_sources(options, environ=cluster_environment(rendered_job))
    assert config.run_date == dt.date(2026, 2, 28)
    assert config.sql_dialect == "mssql"
    assert config.catalog == variables["catalog"]
    assert config.schema == variables["schema"]
    assert config.sql_auth == "entra-managed-identity"
    assert config.azure_service_credential == variables["sql_service_credential"]
    assert azure.parse_jdbc_url(config.effective_sql_url) == azure.SqlServerAddress(
        SAMPLE_DEPLOY_VALUES["sql_server"], 1433, SAMPLE_DEPLOY_VALUES["sql_database"]
    )


def test_run_date_default_is_empty(bundle):
    (run_date,) = [p for p in job(bundle)["parameters"] if p["name"] == "run_date"]
    assert run_date["default"] == ""


def test_missing_run_date_stops_entry_point(bundle, monkeypatch):
    monkeypatch.setattr("playtest_spark.secrets.read_secret_scope", lambda scope: {})
    _, task, _ = rendered_task(bundle, "prod", run_date="")
    arguments = task["python_wheel_task"]["parameters"]
    with pytest.raises(ConfigError, match="run_date"):
        parse_config(arguments)


def test_entry_point_failure_raises_system_exit(bundle, monkeypatch):
    monkeypatch.setattr("playtest_spark.secrets.read_secret_scope", lambda scope: {})
    _, task, _ = rendered_task(bundle, "prod", run_date="")
    with pytest.raises(SystemExit) as raised:
        main(task["python_wheel_task"]["parameters"])
    assert raised.value.code not in (0, None)


# -- cluster, libraries, limits ---------------------------------------------------------


def test_cluster_runtime_matches_installed_pyspark(bundle):
    spark_version = job(bundle)["job_clusters"][0]["new_cluster"]["spark_version"]
    match = re.fullmatch(r"(\d+\.\d+)\.x(?:-[a-z-]+)?-scala(\d+\.\d+)", spark_version)
    assert match, f"unexpected spark_version {spark_version!r}"
    runtime = DATABRICKS_RUNTIMES[match.group(1)]
    pyspark_version = importlib.metadata.version("pyspark")
    delta_version = importlib.metadata.version("delta-spark")
    assert match.group(2) == runtime["scala"]
    assert ".".join(pyspark_version.split(".")[:2]) == runtime["spark"]
    assert ".".join(delta_version.split(".")[:2]) == runtime["delta"]


def test_task_pypi_libraries_match_job_extra(bundle):
    job_extra = {Requirement(text).name: Requirement(text) for text in PYPROJECT["project"]["optional-dependencies"]["job"]}
    (task,) = wheel_tasks(bundle)
    libraries = [Requirement(library["pypi"]["package"]) for library in task["libraries"] if "pypi" in library]
    for library in libraries:
        assert library.name not in PROVIDED_BY_RUNTIME, f"{library.name} would replace the runtime's own"
        assert library.name in job_extra, f"{library.name} is not in the job extra"
        assert library.specifier == job_extra[library.name].specifier, f"{library.name} bounds differ"
    installed = {library.name for library in libraries}
    for name in job_extra:
        assert name in installed | PROVIDED_BY_RUNTIME | NOT_NEEDED_ON_DATABRICKS, (
            f"job extra {name} is neither installed on the cluster nor provided by the runtime"
        )


def test_jdbc_driver_library_supports_bulk_copy(bundle):
    (task,) = wheel_tasks(bundle)
    (coordinates,) = [library["maven"]["coordinates"] for library in task["libraries"] if "maven" in library]
    group, artifact, version = coordinates.split(":")
    assert (group, artifact) == ("com.microsoft.sqlserver", "mssql-jdbc")
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) >= (9, 2), "useBulkCopyForBatchInsert needs mssql-jdbc 9.2 or later"
    assert version.endswith(".jre11"), "Databricks Runtime 17 runs Java 17: use the jre11 build"


def test_init_script_installs_odbc_driver(bundle):
    cluster = job(bundle)["job_clusters"][0]["new_cluster"]
    (script,) = cluster["init_scripts"]
    destination = script["workspace"]["destination"]
    prefix = "${workspace.file_path}/"
    assert destination.startswith(prefix)
    path = REPO_ROOT / destination[len(prefix):]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash")
    assert "msodbcsql18" in text
    assert azure.ODBC_DRIVER == "ODBC Driver 18 for SQL Server"


def test_job_runs_one_at_a_time_with_queue(bundle):
    spec = job(bundle)
    assert spec["max_concurrent_runs"] == 1
    assert spec["queue"]["enabled"] is True


def test_task_retries_fit_in_job_timeout(bundle):
    spec = job(bundle)
    (task,) = spec["tasks"]
    assert task["max_retries"] >= 1
    attempts = task["max_retries"] + 1
    worst_case = attempts * task["timeout_seconds"] + task["max_retries"] * task["min_retry_interval_millis"] / 1000
    assert worst_case <= spec["timeout_seconds"]


def test_job_emails_on_failure(bundle):
    assert job(bundle)["email_notifications"]["on_failure"] == ["${var.notification_email}"]


def test_job_has_no_schedule(bundle):
    # A Databricks schedule cannot pass the logical date; Data Factory starts the runs.
    spec = job(bundle)
    assert "schedule" not in spec
    assert "trigger" not in spec
    assert "continuous" not in spec
