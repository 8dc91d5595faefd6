"""Payment outcome per order, keyed by orderId: the record that prevents a second charge."""

from __future__ import annotations

from orderstream.domain.payment import PaymentRecord
from orderstream.worker import chaos
from orderstream.worker.app import raw_table

payments_table = raw_table("payments", "Payment outcome per order, keyed by orderId.")


def get_payment(order_id: str) -> PaymentRecord | None:
    raw = payments_table.get(order_id.encode())
    return None if raw is None else PaymentRecord.model_validate_json(raw)


def put_payment(rec: PaymentRecord) -> None:
    chaos.store_write()
    payments_table[rec.orderId.encode()] = rec.model_dump_json().encode()
