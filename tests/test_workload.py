import pytest

from dsocr_trace.errors import UserError
from dsocr_trace.workload import gundam_grid, make_workload


@pytest.mark.parametrize(("mode", "tokens"), [("tiny", 73), ("small", 111), ("base", 273), ("large", 421)])
def test_vision_tokens_per_mode(mode: str, tokens: int) -> None:
    assert make_workload(mode).vision_tokens == tokens


@pytest.mark.parametrize(
    ("crops", "tokens"),
    [("2x1", 483), ("1x2", 493), ("3x2", 893), ("2x3", 903), ("1x6", 933), ("3x3", 1203), ("1x9", 1263)],
)
def test_gundam_tokens_from_grid(crops: str, tokens: int) -> None:
    w, h = (int(x) for x in crops.split("x"))
    wl = make_workload("gundam", crops=crops)
    assert wl.vision_tokens == tokens == 273 + (10 * h) * (10 * w + 1)


@pytest.mark.parametrize(
    ("size", "grid"),
    [
        ("1700x2200", (2, 3)),  # portrait letter page at 200 dpi: aspect 0.77, closest allowed 2/3
        ("2200x1700", (3, 2)),  # landscape
        ("600x600", None),  # both sides <= 640: no tiles
        ("640x480", None),
        ("1280x640", (2, 1)),
        ("1000x3000", (1, 3)),
        ("2000x2000", (3, 3)),  # square: tie between 2x2 and 3x3, larger area wins
    ],
)
def test_gundam_grid_rule(size: str, grid: tuple[int, int] | None) -> None:
    w, h = (int(x) for x in size.split("x"))
    assert gundam_grid(w, h) == grid


def test_gundam_small_page_has_global_view_only() -> None:
    wl = make_workload("gundam", image_size="600x500")
    assert wl.crops is None and wl.vision_tokens == 273


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "huge"},
        {"mode": "gundam", "crops": "1x1"},
        {"mode": "gundam", "crops": "5x2"},
        {"mode": "gundam", "crops": "0x3"},
        {"mode": "gundam", "crops": "abc"},
        {"mode": "base", "crops": "2x2"},
        {"mode": "gundam", "image_size": "0x100"},
        {"mode": "gundam", "image_size": "100000x100"},
        {"mode": "base", "output_tokens": 0},
        {"mode": "base", "output_tokens": -5},
        {"mode": "base", "batch": 0},
        {"mode": "base", "prompt_tokens": -1},
        {"mode": "base", "output_tokens": 8000},
    ],
)
def test_bad_workloads_are_user_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(UserError) as exc:
        make_workload(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(exc.value)


def test_bare_gundam_takes_the_documented_default_page() -> None:
    from dsocr_trace.workload import DEFAULT_GUNDAM_PAGE

    wl = make_workload("gundam")
    assert wl.image_size == DEFAULT_GUNDAM_PAGE and wl.crops == (2, 3)
    assert wl == make_workload("gundam", image_size="1240x1754")
