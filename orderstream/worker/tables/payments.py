"""Payment outcome per order, keyed by orderId: the record that prevents a second charge."""

from __future__ import annotations

from orderstream.domain.payment import PaymentRecord
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

payments_table = raw_table("payments", "Payment outcome per order, keyed by orderId.")
# Not remembered: an order's record is read again only when its payment is asked for again.
_models = ModelTable(payments_table, PaymentRecord, remember=0)


def get_payment(order_id: str) -> PaymentRecord | None:
    return _models.get(order_id)


def put_payment(rec: PaymentRecord) -> None:
    _models.put(rec.orderId, rec)
