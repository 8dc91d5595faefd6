"""Read model: each customer's order history and totals, keyed by customerId."""

from __future__ import annotations

from app.application import raw_table
from app.domain.projections import CustomerOrders

customer_orders_table = raw_table("customer_orders", "Order history per customer.")


def get_history(customer_id: str) -> CustomerOrders | None:
    raw = customer_orders_table.get(customer_id.encode())
    return None if raw is None else CustomerOrders.model_validate_json(raw)


def put_history(history: CustomerOrders) -> None:
    customer_orders_table[history.customerId.encode()] = history.model_dump_json().encode()
