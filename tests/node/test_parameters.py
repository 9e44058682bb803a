"""Parameter specs: descriptors, checks and the Settings they generate (no ROS graph)."""

import dataclasses
import typing

import pytest
from rcl_interfaces.msg import ParameterType

from refseg_node.parameters import (
    PARAMETERS,
    SPECS,
    Settings,
    SettingsError,
    check_value,
    update_settings,
)


def test_settings_has_one_field_per_spec_and_the_defaults_are_valid():
    assert [f.name for f in dataclasses.fields(Settings)] == [p.name for p in PARAMETERS]
    assert typing.get_type_hints(Settings) == {p.name: p.type for p in PARAMETERS}
    settings = Settings.from_values({p.name: p.default for p in PARAMETERS})
    assert settings.threshold == -1.0 and settings.mode == "continuous"  # -1: calibrated
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threshold = 0.3
    assert dataclasses.replace(settings, threshold=0.3).threshold == 0.3


def test_descriptors_carry_type_range_choices_and_read_only():
    d = SPECS["threshold"].descriptor()
    assert d.type == ParameterType.PARAMETER_DOUBLE and not d.read_only
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (-1, 1)
    d = SPECS["max_image_pixels"].descriptor()
    assert d.type == ParameterType.PARAMETER_INTEGER and d.integer_range[0].from_value == 1
    d = SPECS["mode"].descriptor()
    assert "continuous" in d.additional_constraints and "once" in d.description
    assert SPECS["autostart"].descriptor().read_only
    assert "applied on configure" in SPECS["device"].descriptor().description
    assert "applied on configure" not in SPECS["threshold"].descriptor().description


@pytest.mark.parametrize("name,value,message", [
    ("threshold", 1.5, "in [-1, 1]"),
    ("threshold", 1, "must be a float"),
    ("device", "gpu", "cuda:N"),
    ("device", "cuda:x", "cuda:N"),
    ("precision", "int8", "fp32"),
    ("mode", "sometimes", "continuous"),
    ("image_qos", "best_effort", "sensor_data"),
    ("max_rate_hz", -1.0, ">= 0"),
    ("max_query_length", 0, ">= 1"),
    ("marker_scale", 0.0, "> 0"),
    ("image_topic", "", "must not be empty"),
    ("nonsense", 1, "unknown parameter"),
])
def test_bad_values_are_refused_with_a_reason(name, value, message):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_value(name, value)


@pytest.mark.parametrize("name,value", [
    ("device", "cuda:1"), ("device", "cpu"), ("threshold", 0.0), ("threshold", 1.0),
    ("max_rate_hz", 0.0), ("marker_scale", 0.01), ("mode", "once"),
])
def test_good_values_pass(name, value):
    check_value(name, value)


def test_from_values_checks_every_value():
    values = {p.name: p.default for p in PARAMETERS}
    values["log_period"] = -2.0
    with pytest.raises(SettingsError, match="log_period"):
        Settings.from_values(values)


def test_update_settings_applies_live_values_and_names_the_others():
    settings = Settings.from_values({p.name: p.default for p in PARAMETERS})
    update = update_settings(settings, {"threshold": 0.3, "device": "cpu", "use_sim_time": True})
    assert update.error is None and update.later == ("device",)
    assert update.settings.threshold == 0.3 and update.settings.device == "auto"
    refused = update_settings(settings, {"threshold": 0.3, "mode": "sometimes"})
    assert "continuous" in refused.error and refused.settings is None    # all or nothing
    assert update_settings(settings, {"use_sim_time": True}).settings is settings
    unconfigured = update_settings(None, {"threshold": 0.3})
    assert unconfigured.error is None and unconfigured.settings is None
    assert update_settings(None, {"threshold": 2.0}).error
