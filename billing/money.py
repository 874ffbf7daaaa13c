"""Money at the edges: the API speaks USD decimals, the database integer micro-dollars."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000


def usd_to_micros(amount: Decimal | str | int | float) -> int:
    """`0.5` → 500000. Floats go through their shortest text form, so 0.1 stays 100000."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as error:
        raise ValueError(f"not an amount of money: {amount!r}") from error
    if not value.is_finite():
        raise ValueError(f"not an amount of money: {amount!r}")
    return int((value * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> Decimal:
    """500000 → Decimal('0.5'); exact, for JSON as a number or text."""
    return (Decimal(micros) / MICROS_PER_USD).normalize()


def usd_text(micros: int) -> str:
    """Two decimals at least, more when the micro-dollars need them: 79000000 → "79.00"."""
    value = micros_to_usd(micros)
    return f"{value:.2f}" if value == round(value, 2) else f"{value:f}"
