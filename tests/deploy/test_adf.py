"""Checks of the Data Factory resources under adf/ without an Azure subscription.

Every JSON file is deserialised with the models of azure-mgmt-datafactory. The tests use
the msrest based 9.x line, whose polymorphic deserialisation maps an activity's `type`
to its class. The checks cover unknown keys, required fields, references between
resources, parameters, and the date each trigger passes to the job.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from azure.mgmt.datafactory import models

from adf_expressions import (
    Context,
    UnsupportedFunction,
    evaluate,
    evaluate_value,
    function_names,
)
from deploy_files import ADF_DIR, REPO_ROOT

MODEL_OF_FOLDER = {
    "factory": models.Factory,
    "linkedService": models.LinkedServiceResource,
    "pipeline": models.PipelineResource,
    "trigger": models.TriggerResource,
}
DAILY_PIPELINE = "pl_playtest_daily"
BACKFILL_PIPELINE = "pl_playtest_backfill"
DAILY_TRIGGER = "tr_playtest_daily"
WINDOW_TRIGGER = "tr_playtest_window"
DATABRICKS_LINKED_SERVICE = "ls_databricks_playtest"
KEY_VAULT_LINKED_SERVICE = "ls_keyvault_playtest"
RUN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Functions that adf_expressions implements; anything else fails the expression test.
SUPPORTED_FUNCTIONS = {
    "trigger", "pipeline", "activity", "item", "formatDateTime", "addDays", "ticks",
    "add", "sub", "div", "less", "range", "concat",
}


# -- helpers ----------------------------------------------------------------------------


def deserialize(folder: str, data: dict[str, Any]) -> Any:
    return MODEL_OF_FOLDER[folder].deserialize(data)


def _known_key_tree(model: Any) -> dict[str, Any]:
    """Nested JSON keys of the model's attribute map, with (attribute, type) leaves."""
    tree: dict[str, Any] = {}
    for attribute, spec in type(model)._attribute_map.items():
        if not spec["key"]:  # additional_properties collects unknown keys; report them
            continue
        parts = [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", spec["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (attribute, spec["type"])
    return tree


def unknown_keys(model: Any, data: Any, path: str = "") -> list[str]:
    """Return the JSON paths in `data` that the deserialised `model` has no field for."""
    return _walk_keys(model, _known_key_tree(model), data, path)


def _walk_keys(model: Any, tree: dict[str, Any], data: Any, path: str) -> list[str]:
    problems: list[str] = []
    if not isinstance(data, dict):
        return problems
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        known = tree.get(key)
        if known is None:
            problems.append(where)
        elif isinstance(known, dict):
            problems += _walk_keys(model, known, value, where)
        else:
            child = getattr(model, known[0])
            problems += _child_keys(child, value, where)
    return problems


def _child_keys(child: Any, value: Any, path: str) -> list[str]:
    if isinstance(child, list) and isinstance(value, list):
        return [p for index, (c, v) in enumerate(zip(child, value)) for p in _child_keys(c, v, f"{path}[{index}]")]
    if isinstance(child, dict) and isinstance(value, dict):
        return [p for key in value for p in _child_keys(child.get(key), value[key], f"{path}.{key}")]
    if hasattr(type(child), "_attribute_map"):
        return unknown_keys(child, value, path)
    return []


def missing_required(model: Any, path: str = "") -> list[str]:
    """Return the paths of required model fields that are None, searched recursively."""
    problems: list[str] = []
    for attribute, rules in getattr(type(model), "_validation", {}).items():
        if rules.get("required") and getattr(model, attribute, None) is None:
            problems.append(f"{path}.{attribute}" if path else attribute)
    for attribute in type(model)._attribute_map:
        problems += _missing_in_child(getattr(model, attribute, None), f"{path}.{attribute}" if path else attribute)
    return problems


def _missing_in_child(child: Any, path: str) -> list[str]:
    if isinstance(child, list):
        return [p for index, item in enumerate(child) for p in _missing_in_child(item, f"{path}[{index}]")]
    if isinstance(child, dict):
        return [p for key, item in child.items() for p in _missing_in_child(item, f"{path}.{key}")]
    if hasattr(type(child), "_attribute_map"):
        return missing_required(child, path)
    return []


def all_activities(activities: list[Any]) -> list[Any]:
    """Flatten activities, including those inside If, ForEach, Until and Switch."""
    found: list[Any] = []
    for activity in activities or []:
        found.append(activity)
        for attribute in ("activities", "if_true_activities", "if_false_activities", "default_activities"):
            found += all_activities(getattr(activity, attribute, None) or [])
        for case in getattr(activity, "cases", None) or []:
            found += all_activities(case.activities)
    return found


def expressions_in(value: Any) -> list[str]:
    """Return every expression (without `@`) in a JSON value, including `@{...}` parts."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += expressions_in(item)
    elif isinstance(value, list):
        for item in value:
            found += expressions_in(item)
    elif isinstance(value, str):
        if value.startswith("@") and not value.startswith(("@@", "@{")):
            found.append(value[1:])
        found += re.findall(r"@\{([^}]*)\}", value)
    return found


def trigger_pipelines(trigger: Any) -> list[Any]:
    if isinstance(trigger, models.MultiplePipelineTrigger):
        return list(trigger.pipelines or [])
    return [trigger.pipeline]


def pipeline_json(adf: dict, name: str) -> dict[str, Any]:
    return adf["pipeline"][name]["properties"]


def schedule_run_date(adf: dict, scheduled: str) -> str:
    expression = adf["trigger"][DAILY_TRIGGER]["properties"]["pipelines"][0]["parameters"]["runDate"]
    return evaluate_value(expression, Context(trigger={"scheduledTime": scheduled}))


def window_run_date(adf: dict, window_start: str, window_end: str) -> str:
    expression = adf["trigger"][WINDOW_TRIGGER]["properties"]["pipeline"]["parameters"]["runDate"]
    outputs = {"windowStartTime": window_start, "windowEndTime": window_end}
    return evaluate_value(expression, Context(trigger={"outputs": outputs}))


# -- files and models -------------------------------------------------------------------


def test_adf_layout_has_every_folder(adf):
    for folder in ("linkedService", "pipeline", "trigger"):
        assert adf[folder], f"adf/{folder}/ has no JSON file"


def test_adf_file_name_matches_resource_name(adf):
    for folder, resources in adf.items():
        for stem, data in resources.items():
            assert data.get("name") == stem, f"adf/{folder}/{stem}.json names itself {data.get('name')!r}"


@pytest.mark.parametrize("folder", ["factory", "linkedService", "pipeline", "trigger"])
def test_adf_resources_deserialize_to_specific_models(adf, folder):
    for stem, data in adf[folder].items():
        resource = deserialize(folder, data)
        inner = getattr(resource, "properties", resource)
        if folder in ("linkedService", "trigger"):
            assert type(inner).__name__ not in ("LinkedService", "Trigger"), (
                f"{folder}/{stem}: type {data['properties'].get('type')!r} is not a known model"
            )
        for activity in all_activities(getattr(resource, "activities", None) or []):
            assert type(activity).__name__ not in ("Activity", "ExecutionActivity", "ControlActivity"), (
                f"{folder}/{stem}: activity {activity.name!r} has an unknown type"
            )


@pytest.mark.parametrize("folder", ["factory", "linkedService", "pipeline", "trigger"])
def test_adf_resources_have_no_unknown_keys(adf, folder):
    for stem, data in adf[folder].items():
        resource = deserialize(folder, data)
        assert unknown_keys(resource, data) == [], f"{folder}/{stem}"


@pytest.mark.parametrize("folder", ["factory", "linkedService", "pipeline", "trigger"])
def test_adf_resources_have_required_fields(adf, folder):
    for stem, data in adf[folder].items():
        assert missing_required(deserialize(folder, data)) == [], f"{folder}/{stem}"


def test_unknown_keys_reports_misspelled_key():
    data = {"name": "p", "properties": {"activities": [
        {"name": "a", "type": "DatabricksJob", "typeProperties": {"jobID": "1"}},
    ]}}
    resource = models.PipelineResource.deserialize(data)
    assert unknown_keys(resource, data) == ["properties.activities[0].typeProperties.jobID"]


def test_missing_required_reports_absent_job_id():
    data = {"name": "p", "properties": {"activities": [
        {"name": "a", "type": "DatabricksJob", "typeProperties": {}},
    ]}}
    resource = models.PipelineResource.deserialize(data)
    assert "activities[0].job_id" in missing_required(resource)


# -- references -------------------------------------------------------------------------


def test_activity_linked_services_exist(adf):
    for stem, data in adf["pipeline"].items():
        for activity in all_activities(deserialize("pipeline", data).activities):
            reference = getattr(activity, "linked_service_name", None)
            if reference is not None:
                assert reference.reference_name in adf["linkedService"], (
                    f"pipeline {stem}, activity {activity.name}: no linked service "
                    f"{reference.reference_name!r}"
                )


def test_execute_pipeline_targets_exist_with_their_parameters(adf):
    for stem, data in adf["pipeline"].items():
        for activity in all_activities(deserialize("pipeline", data).activities):
            if not isinstance(activity, models.ExecutePipelineActivity):
                continue
            target = activity.pipeline.reference_name
            assert target in adf["pipeline"], f"pipeline {stem} runs unknown pipeline {target!r}"
            declared = pipeline_json(adf, target).get("parameters", {})
            given = set(activity.parameters or {})
            required = {name for name, spec in declared.items() if "defaultValue" not in spec}
            assert given <= set(declared), f"{stem} passes undeclared {sorted(given - set(declared))}"
            assert required <= given, f"{stem} omits required {sorted(required - given)} of {target}"


def test_triggers_reference_pipelines_with_their_parameters(adf):
    for stem, data in adf["trigger"].items():
        trigger = deserialize("trigger", data).properties
        for reference in trigger_pipelines(trigger):
            target = reference.pipeline_reference.reference_name
            assert target in adf["pipeline"], f"trigger {stem} starts unknown pipeline {target!r}"
            declared = pipeline_json(adf, target).get("parameters", {})
            given = set(reference.parameters or {})
            required = {name for name, spec in declared.items() if "defaultValue" not in spec}
            assert given <= set(declared), f"{stem} passes undeclared {sorted(given - set(declared))}"
            assert required <= given, f"{stem} omits required {sorted(required - given)}"


def test_pipeline_expressions_use_declared_parameters(adf):
    factory_parameters = {
        name
        for factory in adf["factory"].values()
        for name in factory.get("properties", {}).get("globalParameters", {})
    }
    for stem in adf["pipeline"]:
        properties = pipeline_json(adf, stem)
        declared = set(properties.get("parameters", {}))
        text = " ".join(expressions_in(properties["activities"]))
        used = set(re.findall(r"pipeline\(\)\.parameters\.(\w+)", text))
        used_global = set(re.findall(r"pipeline\(\)\.globalParameters\.(\w+)", text))
        assert used <= declared, f"{stem} uses undeclared parameters {sorted(used - declared)}"
        assert used_global <= factory_parameters, (
            f"{stem} uses undeclared global parameters {sorted(used_global - factory_parameters)}"
        )


def test_activity_references_name_existing_activities(adf):
    for stem, data in adf["pipeline"].items():
        activities = all_activities(deserialize("pipeline", data).activities)
        names = {activity.name for activity in activities}
        text = " ".join(expressions_in(pipeline_json(adf, stem)["activities"]))
        for name in re.findall(r"activity\('([^']*)'\)", text):
            assert name in names, f"{stem} reads output of unknown activity {name!r}"
        for activity in activities:
            for dependency in activity.depends_on or []:
                assert dependency.activity in names, (
                    f"{stem}: {activity.name} depends on unknown activity {dependency.activity!r}"
                )


def test_job_parameters_exist_in_bundle_job(adf, bundle):
    job_parameters = {
        parameter["name"]
        for job in bundle["resources"]["jobs"].values()
        for parameter in job.get("parameters", [])
    }
    for stem, data in adf["pipeline"].items():
        for activity in all_activities(deserialize("pipeline", data).activities):
            if isinstance(activity, models.DatabricksJobActivity):
                given = set(activity.job_parameters or {})
                assert given <= job_parameters, f"{stem} passes unknown {sorted(given - job_parameters)}"
                assert "run_date" in given, f"{stem}: {activity.name} passes no run_date"


# -- behaviour --------------------------------------------------------------------------


def test_databricks_activity_retries_and_outlasts_job(adf, bundle):
    job = bundle["resources"]["jobs"]["playtest_daily"]
    activity = deserialize("pipeline", adf["pipeline"][DAILY_PIPELINE]).activities[0]
    assert isinstance(activity, models.DatabricksJobActivity)
    assert activity.policy.retry >= 1
    assert activity.policy.retry_interval_in_seconds >= 600
    days, _, clock = activity.policy.timeout.partition(".")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    timeout_s = int(days) * 86_400 + hours * 3600 + minutes * 60 + seconds
    assert timeout_s > job["timeout_seconds"], "the activity would give up before the job's own timeout"


def test_databricks_failure_leads_to_fail_activity(adf):
    activities = deserialize("pipeline", adf["pipeline"][DAILY_PIPELINE]).activities
    job_activities = [a.name for a in activities if isinstance(a, models.DatabricksJobActivity)]
    handlers = [
        activity
        for activity in activities
        for dependency in activity.depends_on or []
        if dependency.activity in job_activities and "Failed" in dependency.dependency_conditions
    ]
    assert [type(handler) for handler in handlers] == [models.FailActivity]


def test_pipelines_run_one_at_a_time(adf):
    for stem in adf["pipeline"]:
        assert pipeline_json(adf, stem).get("concurrency") == 1, f"{stem} allows concurrent runs"


def test_databricks_linked_service_uses_managed_identity(adf):
    service = deserialize("linkedService", adf["linkedService"][DATABRICKS_LINKED_SERVICE]).properties
    assert isinstance(service, models.AzureDatabricksLinkedService)
    assert service.authentication == "MSI"
    assert service.workspace_resource_id
    assert service.access_token is None


def test_key_vault_linked_service_has_vault_url(adf):
    service = deserialize("linkedService", adf["linkedService"][KEY_VAULT_LINKED_SERVICE]).properties
    assert isinstance(service, models.AzureKeyVaultLinkedService)
    assert re.fullmatch(r"https://[a-z0-9-]+\.vault\.azure\.net/", service.base_url)


def test_daily_trigger_runs_once_a_day_in_utc(adf):
    trigger = deserialize("trigger", adf["trigger"][DAILY_TRIGGER]).properties
    assert isinstance(trigger, models.ScheduleTrigger)
    assert trigger.recurrence.frequency == "Day"
    assert trigger.recurrence.interval == 1
    assert trigger.recurrence.time_zone == "UTC"


def test_window_trigger_is_stopped_bounded_and_serial(adf):
    trigger = deserialize("trigger", adf["trigger"][WINDOW_TRIGGER]).properties
    assert isinstance(trigger, models.TumblingWindowTrigger)
    assert adf["trigger"][WINDOW_TRIGGER]["properties"]["runtimeState"] == "Stopped"
    assert trigger.end_time is not None
    assert trigger.max_concurrency == 1
    assert (trigger.frequency, trigger.interval) == ("Hour", 24)
    assert trigger.start_time.time() == dt.time(0, 0)


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [
        ("2026-03-01T02:00:00Z", "2026-02-28"),
        ("2026-01-01T02:00:00Z", "2025-12-31"),
        ("2028-03-01T02:00:00Z", "2028-02-29"),
        ("2026-06-15T00:00:00.0000000Z", "2026-06-14"),
        ("2026-06-15T23:59:59.9999999Z", "2026-06-14"),
    ],
)
def test_schedule_trigger_passes_previous_utc_day(adf, scheduled, expected):
    assert schedule_run_date(adf, scheduled) == expected


def test_schedule_trigger_matches_python_logical_date(adf):
    start = dt.datetime(2025, 12, 25, 2, 0, tzinfo=dt.timezone.utc)
    for offset in range(400):
        scheduled = start + dt.timedelta(days=offset)
        expected = (scheduled - dt.timedelta(days=1)).date().isoformat()
        text = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert schedule_run_date(adf, text) == expected, text


def test_window_trigger_passes_window_start_date(adf):
    assert window_run_date(adf, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z") == "2026-01-05"


def test_window_and_schedule_agree_on_same_night(adf):
    # The window [D, D+1) ends, plus its 2-hour delay, when the schedule fires on D+1 at 02:00.
    assert window_run_date(adf, "2026-04-09T00:00:00Z", "2026-04-10T00:00:00Z") == (
        schedule_run_date(adf, "2026-04-10T02:00:00Z")
    )


def test_daily_pipeline_passes_run_date_parameter_unchanged(adf):
    activity = pipeline_json(adf, DAILY_PIPELINE)["activities"][0]
    run_date = activity["typeProperties"]["jobParameters"]["run_date"]
    assert evaluate_value(run_date, Context(parameters={"runDate": "2026-02-28"})) == "2026-02-28"


def test_backfill_pipeline_expands_inclusive_range(adf):
    properties = pipeline_json(adf, BACKFILL_PIPELINE)
    for_each = properties["activities"][1]
    context = Context(parameters={"firstDate": "2026-01-30", "lastDate": "2026-02-02"})
    offsets = evaluate_value(for_each["typeProperties"]["items"], context)
    run_date = for_each["typeProperties"]["activities"][0]["typeProperties"]["parameters"]["runDate"]
    dates = [evaluate_value(run_date, Context(parameters=context.parameters, item=i)) for i in offsets]
    assert dates == ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]


def test_backfill_pipeline_single_day_runs_once(adf):
    items = pipeline_json(adf, BACKFILL_PIPELINE)["activities"][1]["typeProperties"]["items"]
    context = Context(parameters={"firstDate": "2026-05-01", "lastDate": "2026-05-01"})
    assert evaluate_value(items, context) == [0]


def test_backfill_pipeline_rejects_reversed_range(adf):
    check = pipeline_json(adf, BACKFILL_PIPELINE)["activities"][0]
    context = Context(parameters={"firstDate": "2026-05-02", "lastDate": "2026-05-01"})
    assert evaluate_value(check["typeProperties"]["expression"], context) is True
    assert check["typeProperties"]["ifTrueActivities"][0]["type"] == "Fail"


def test_trigger_dates_are_iso_dates(adf):
    for scheduled in ("2026-07-01T02:00:00Z", "2026-12-31T02:00:00Z"):
        assert RUN_DATE.fullmatch(schedule_run_date(adf, scheduled))


# -- no wall clock ----------------------------------------------------------------------


def test_no_utcnow_in_orchestration_files():
    paths = sorted(ADF_DIR.rglob("*.json")) + [REPO_ROOT / "databricks.yml"]
    paths += sorted((REPO_ROOT / "resources").glob("*.yml"))
    for path in paths:
        text = path.read_text(encoding="utf-8").lower()
        assert "utcnow" not in text, f"{path.relative_to(REPO_ROOT)} reads the wall clock"
        assert "{{job.start_time" not in text, f"{path.relative_to(REPO_ROOT)} reads the run's start time"


def test_every_expression_uses_supported_functions(adf):
    for folder, resources in adf.items():
        for stem, data in resources.items():
            for expression in expressions_in(data):
                unsupported = function_names(expression) - SUPPORTED_FUNCTIONS
                assert not unsupported, f"{folder}/{stem}: {sorted(unsupported)} in {expression!r}"



# -- the evaluator itself ---------------------------------------------------------------


def test_evaluator_rejects_utcnow():
    with pytest.raises(UnsupportedFunction):
        evaluate("formatDateTime(utcnow(), 'yyyy-MM-dd')", Context())


def test_evaluator_ticks_count_from_year_one():
    assert evaluate("ticks('0001-01-02T00:00:00Z')", Context()) == 864_000_000_000


def test_evaluator_add_days_returns_round_trip_format():
    assert evaluate("addDays('2026-03-01T02:00:00Z', -1)", Context()) == "2026-02-28T02:00:00.0000000Z"


def test_evaluator_reads_escaped_quote_and_interpolation():
    context = Context(parameters={"runDate": "2026-01-01"})
    assert evaluate_value("day @{pipeline().parameters.runDate} isn''t", context) == "day 2026-01-01 isn''t"
    assert evaluate("concat('isn''t ', 'it')", context) == "isn't it"


def test_evaluator_keeps_double_at_literal():
    assert evaluate_value("@@trigger()", Context()) == "@trigger()"
