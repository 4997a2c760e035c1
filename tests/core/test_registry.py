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
    assert "square" in reg and len(reg) == 1


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
