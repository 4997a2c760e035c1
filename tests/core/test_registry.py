import pytest

from ensemblab.errors import ConfigError
from ensemblab.registry import Registry, build


def test_register_decorator_and_get():
    reg = Registry("widget")

    @reg.register("square")
    def make_square(side=1):
        return side * side

    assert reg.get("square") is make_square
    assert build(reg, "square", side=3) == 9
    assert "square" in reg and len(reg) == 1 and list(reg) == ["square"]


def test_unknown_name_names_close_matches():
    reg = Registry("member kind")
    reg.register("maskrcnn", object())
    reg.register("yolox", object())
    with pytest.raises(ConfigError, match=r"unknown member kind 'maskrcn' \(did you mean maskrcnn"):
        reg.get("maskrcn")


def test_duplicate_registration_is_an_error():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)


def test_unknown_name_is_one_line_naming_the_closest_and_all():
    reg = Registry("loss")
    for name in ("ce", "ce+dice", "ce+focal"):
        reg.register(name, object())
    with pytest.raises(ConfigError) as info:
        reg.get("ce+dise")
    message = str(info.value)
    assert "\n" not in message
    assert message == ("unknown loss 'ce+dise' (did you mean ce+dice?); "
                       "known: ce, ce+dice, ce+focal")


def test_discover_runs_once_before_the_first_lookup():
    calls = []

    def discover():
        calls.append(1)
        reg.register("found", 1)

    reg = Registry("widget", discover=discover)
    reg.register("early", 0)
    assert calls == []  # registering is no lookup
    assert "found" in reg and reg.names() == ["early", "found"] and reg.get("found") == 1
    assert calls == [1]


def test_scope_undoes_its_registrations():
    reg = Registry("widget")
    reg.register("kept", 1)
    with reg.scope():
        reg.register("tried", 2)
        assert reg.get("tried") == 2
    assert reg.names() == ["kept"]
    with pytest.raises(ConfigError, match="unknown widget 'tried'"):
        reg.get("tried")
