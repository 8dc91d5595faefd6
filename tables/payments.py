"""Payment outcome per order, keyed by orderId: the record that prevents a second charge."""

from __future__ import annotations

from app.application import raw_table
from app.domain.payment import PaymentRecord
from app.model_table import ModelTable

payments_table = raw_table("payments", "Payment outcome per order, keyed by orderId.")
_models = ModelTable(payments_table, PaymentRecord, remember=0)  # read about once per order


def get_payment(order_id: str) -> PaymentRecord | None:
    return _models.get(order_id)


def put_payment(rec: PaymentRecord) -> None:
    _models.put(rec.orderId, rec)
