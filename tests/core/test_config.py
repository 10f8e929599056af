"""Run configuration: messages that name the field and say how to fix it, files and overrides,
the JSON schema and prompt timelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fifo_core.config import PromptTimeline, RunConfig, TimedPrompt, json_schema, load_config_file
from fifo_core.errors import ConfigError
from fifo_gaussian.ar1 import DEFAULTS


def config_error(values: dict) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        RunConfig.parse(values)
    return raised.value


@pytest.mark.parametrize(
    ("values", "field", "fix"),
    [
        ({"prompt": "x", "frames": -3}, "frames", "pass a positive count"),
        ({"prompt": "x", "frames": 0}, "frames", "leave --frames out"),
        ({"prompt": "x", "partitions": 0}, "partitions", "--n"),
        ({"prompt": "x", "window": 0}, "window", "--f"),
        ({"prompt": "x", "seed": -1}, "seed", "--seed"),
        ({"prompt": "x", "fps": 0}, "fps", "--fps"),
        ({"prompt": "x", "guidance_scale": -1}, "guidance_scale", "--guidance"),
        ({"prompt": "   "}, "prompt", "describe the video"),
        ({"prompt": ""}, "prompt", "pass the prompt"),
    ],
)
def test_invalid_values_name_the_field_and_the_fix(values: dict, field: str, fix: str) -> None:
    error = config_error(values)
    assert error.field == field
    assert fix in str(error)
    assert error.one_line().startswith(f"{field}: ")


def test_the_value_given_is_quoted_back() -> None:
    assert "(got -3)" in str(config_error({"prompt": "x", "frames": -3}))


def test_an_unknown_key_is_named_and_the_valid_ones_listed() -> None:
    error = config_error({"prompt": "x", "framez": 10})
    assert error.field == "framez"
    assert "unknown setting" in str(error) and "frames" in str(error) and "partitions" in str(error)


def test_a_missing_prompt_is_named() -> None:
    error = config_error({})
    assert error.field == "prompt" and "pass the prompt" in str(error)


def test_duplicate_sinks_say_how_to_fix_it() -> None:
    error = config_error({"prompt": "x", "sinks": ["out.mp4", "out.mp4"]})
    assert "given twice" in str(error) and "--sink" in str(error)


def test_duplicate_sinks_name_the_field() -> None:
    error = config_error({"prompt": "x", "sinks": ["out.mp4", "out.mp4"]})
    assert error.field == "sinks"
    assert error.one_line().startswith("sinks: ")


def test_lookahead_needs_a_window_of_two() -> None:
    config = RunConfig.parse({"prompt": "x", "window": 1, "lookahead": True})
    with pytest.raises(ConfigError) as raised:
        config.resolve(DEFAULTS)
    assert raised.value.field == "window"
    assert "--no-lookahead" in str(raised.value) and "raise f" in str(raised.value)
    layout = RunConfig.parse({"prompt": "x", "window": 1, "lookahead": False}).resolve(DEFAULTS).layout
    assert (layout.window, layout.lookahead) == (1, False)


@pytest.mark.parametrize("sampler", ["ddpm", "euler"])
def test_eta_with_another_sampler_is_refused(sampler: str) -> None:
    config = RunConfig.parse({"prompt": "x", "sampler": sampler, "eta": 0.5})
    with pytest.raises(ConfigError) as raised:
        config.resolve(DEFAULTS)
    assert raised.value.field == "eta"
    assert sampler in str(raised.value) and "drop --eta" in str(raised.value)


def test_eta_is_accepted_for_ddim_and_defaults_come_from_the_backbone() -> None:
    run = RunConfig.parse({"prompt": "x", "eta": 0.25, "partitions": 2}).resolve(DEFAULTS)
    assert run.eta == 0.25 and run.sampler == DEFAULTS.sampler == "ddim"
    assert run.layout.partitions == 2 and run.layout.window == DEFAULTS.window
    assert (run.height, run.width, run.fps) == (DEFAULTS.height, DEFAULTS.width, DEFAULTS.fps)


# --------------------------------------------------------------------------------------------
# Files


TOML = """
prompt = "a lighthouse at dusk"
frames = 24
partitions = 2
sinks = ["out.mp4"]
backbone_options = { rho = 0.8 }
"""


def test_toml_and_json_files_load_and_flags_override(tmp_path: Path) -> None:
    toml_file = tmp_path / "run.toml"
    toml_file.write_text(TOML, encoding="utf-8")
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"prompt": "a lighthouse at dusk", "frames": 24, "partitions": 2, "sinks": ["out.mp4"], "backbone_options": {"rho": 0.8}}), encoding="utf-8")
    for path in (toml_file, json_file):
        config = RunConfig.from_file(path)
        assert (config.prompt, config.frames, config.partitions, config.sinks) == ("a lighthouse at dusk", 24, 2, ["out.mp4"])
        assert config.backbone_options == {"rho": 0.8}
        overridden = RunConfig.from_file(path, frames=5, seed=9)
        assert (overridden.frames, overridden.seed, overridden.partitions) == (5, 9, 2)


def test_a_timeline_in_a_file_becomes_a_prompt_timeline(tmp_path: Path) -> None:
    path = tmp_path / "story.toml"
    path.write_text('[[prompt]]\nstart = 0\nprompt = "dawn"\n\n[[prompt]]\nstart = 30\nprompt = "noon"\n', encoding="utf-8")
    config = RunConfig.from_file(path)
    assert isinstance(config.prompt, PromptTimeline) and config.timeline.prompts == ["dawn", "noon"]


@pytest.mark.parametrize(("name", "text", "expected"), [("bad.toml", "prompt = ", "not valid TOML"), ("bad.json", '{"prompt": ', "not valid JSON"), ("list.json", "[1, 2]", "JSON object")])
def test_a_broken_file_is_named_with_what_is_wrong(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert raised.value.field == "config" and expected in str(raised.value) and name in str(raised.value)


def test_a_missing_or_unknown_kind_of_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config_file(tmp_path / "absent.toml")
    path = tmp_path / "run.yaml"
    path.write_text("prompt: x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"must end in \.toml or \.json"):
        load_config_file(path)


def test_an_invalid_value_in_a_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('prompt = "x"\nframes = -1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        RunConfig.from_file(path)
    assert raised.value.field == "frames"


# --------------------------------------------------------------------------------------------
# JSON schema


def test_json_schema_describes_every_field() -> None:
    schema = json.loads(json.dumps(json_schema()))  # serialisable as JSON
    assert schema["type"] == "object"
    assert schema["required"] == ["prompt"]
    assert schema["additionalProperties"] is False, "unknown keys are refused, as RunConfig does"
    assert set(schema["properties"]) == set(RunConfig.model_fields)
    allowed_types = {"object", "array", "string", "integer", "number", "boolean", "null"}

    def check(node) -> None:
        # The structural part of the JSON-schema meta-schema that matters here: every "type" is
        # a JSON type and every $ref resolves inside the document.
        if isinstance(node, dict):
            if "type" in node:
                types = node["type"] if isinstance(node["type"], list) else [node["type"]]
                assert set(types) <= allowed_types
            if "$ref" in node:
                assert node["$ref"].startswith("#/$defs/") and node["$ref"].split("/")[-1] in schema["$defs"]
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(schema)
    assert schema["properties"]["frames"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    assert set(schema["properties"]["sampler"]["anyOf"][0]["enum"]) == {"ddim", "ddpm", "euler"}
    assert "description" in schema["properties"]["seed"]


# --------------------------------------------------------------------------------------------
# Prompt timelines


def test_timeline_entries_are_ordered_and_prompt_at_follows_them() -> None:
    timeline = PromptTimeline(
        entries=(TimedPrompt(start=20, prompt="night"), TimedPrompt(start=0, prompt="day"), TimedPrompt(start=10, prompt="dusk"))
    )
    assert timeline.prompts == ["day", "dusk", "night"]
    expected = ["day"] * 10 + ["dusk"] * 10 + ["night"] * 5
    assert [timeline.prompt_at(frame) for frame in range(25)] == expected
    assert timeline.prompt_at(10**9) == "night"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"start": 5, "prompt": "a"}], "must start at frame 0"),
        ([{"start": 0, "prompt": "a"}, {"start": 0, "prompt": "b"}], "distinct start"),
        ([], "at least 1"),
        ([{"start": -1, "prompt": "a"}], "greater than or equal to 0"),
    ],
)
def test_bad_timelines_are_refused(entries: list, message: str) -> None:
    error = config_error({"prompt": entries})
    assert message in str(error)
    assert (error.field or "").startswith("prompt")


def test_a_prompt_list_parses_into_a_timeline() -> None:
    config = RunConfig.parse({"prompt": [{"start": 0, "prompt": "a"}, {"start": 8, "prompt": "b"}]})
    assert config.timeline.prompt_at(7) == "a" and config.timeline.prompt_at(8) == "b"
    assert RunConfig.parse({"prompt": "single"}).timeline.prompts == ["single"]
