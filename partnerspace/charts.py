"""Small charts drawn on the server as SVG geometry, so a page shows them without script.

Only numbers and the days they count come out of here; the templates draw them with
their own words and colours.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone


def last_days(count: int, today: date) -> list[date]:
    """``count`` days ending with ``today``, oldest first."""
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def day_bounds(days: list[date]) -> list[tuple[datetime, datetime]]:
    """Each day's start and end in the current time zone, daylight saving included: counts
    per day become plain comparisons in the database, no date function per row."""
    starts = [timezone.make_aware(datetime.combine(d, datetime.min.time())) for d in days]
    after = days[-1] + timedelta(days=1)
    ends = [*starts[1:], timezone.make_aware(datetime.combine(after, datetime.min.time()))]
    return list(zip(starts, ends, strict=True))


def day_number(field: str, bounds: list[tuple[datetime, datetime]]):
    """The index in ``bounds`` of the day ``field`` falls in, as a database expression to
    group by: a balanced ``CASE`` of a few comparisons per row, no date function."""

    def within(low: int, high: int):
        if high - low == 1:
            return Value(low)
        middle = (low + high) // 2
        return Case(
            When(**{f"{field}__lt": bounds[middle][0]}, then=within(low, middle)),
            default=within(middle, high),
            output_field=IntegerField(),
        )

    return within(0, len(bounds))


def _nice_ceiling(value: int) -> int:
    """The top of the axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    value = max(value, 1)
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


@dataclass(frozen=True)
class Bar:
    day: date
    delivered: int
    failed: int
    x: float
    width: float
    middle: float
    delivered_y: float
    delivered_height: float
    failed_y: float
    failed_height: float
    labelled: bool


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class DailyChart:
    width: int
    height: int
    left: int
    top: int
    bottom: int
    right: int
    bars: list[Bar]
    ticks: list[Tick]
    total_delivered: int
    total_failed: int


def daily_chart(
    days: list[date],
    delivered: dict[date, int],
    failed: dict[date, int],
    *,
    width: int = 720,
    height: int = 240,
    label_every: int = 7,
) -> DailyChart:
    """Stacked bars per day (delivered below, failed above) with a y-axis of three ticks."""
    left, right, top, bottom_margin = 48, width - 24, 12, 48
    bottom = height - bottom_margin
    plot_height = bottom - top
    ceiling = _nice_ceiling(max((delivered.get(d, 0) + failed.get(d, 0) for d in days), default=0))
    slot = (right - left) / max(len(days), 1)
    bar_width = max(slot * 0.7, 1)
    bars = []
    for index, day in enumerate(days):
        ok, bad = delivered.get(day, 0), failed.get(day, 0)
        ok_height = plot_height * ok / ceiling
        bad_height = plot_height * bad / ceiling
        bars.append(
            Bar(
                day=day,
                delivered=ok,
                failed=bad,
                x=round(left + index * slot + (slot - bar_width) / 2, 1),
                width=round(bar_width, 1),
                middle=round(left + index * slot + slot / 2, 1),
                delivered_y=round(bottom - ok_height, 1),
                delivered_height=round(ok_height, 1),
                failed_y=round(bottom - ok_height - bad_height, 1),
                failed_height=round(bad_height, 1),
                labelled=(len(days) - 1 - index) % label_every == 0,
            )
        )
    ticks = [
        Tick(value=value, y=round(bottom - plot_height * value / ceiling, 1))
        for value in sorted({0, ceiling // 2, ceiling})
    ]
    return DailyChart(
        width=width,
        height=height,
        left=left,
        top=top,
        bottom=bottom,
        right=right,
        bars=bars,
        ticks=ticks,
        total_delivered=sum(delivered.get(d, 0) for d in days),
        total_failed=sum(failed.get(d, 0) for d in days),
    )


def sparkline(values: list[int], *, width: int = 120, height: int = 24) -> str:
    """The ``points`` of an SVG polyline through ``values``, highest at the top."""
    top = max(max(values, default=0), 1)
    step = width / max(len(values) - 1, 1)
    usable = height - 2
    return " ".join(
        f"{round(i * step, 1)},{round(1 + usable - usable * v / top, 1)}"
        for i, v in enumerate(values)
    )
