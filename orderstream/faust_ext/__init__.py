"""Our Faust classes, plugged in through Faust's own extension points: the transport (entry
point `faust.transports`: consumer, producer, transaction manager), the tables' store (entry
point `faust.stores`), the `TableManager` and `Stream` app settings, and the app class.

Each overrides a few methods of faust-streaming FAUST_VERSION (and a few of aiokafka
AIOKAFKA_VERSION, under it); `check_faust_version` refuses any other version of either at start,
and tests/unit/faust_ext/test_faust_ext_drift.py fails when the source of a function they
override or copy changes (OVERRIDES holds each one's hash)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version

from orderstream.errors import OrderstreamError

FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"

#: Faust functions our classes override or copy, and the sha256 of their source (16 digits).
OVERRIDES: dict[str, str] = {
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.consumer:Consumer._filter_tps_with_pending_acks": "f6f9239774234e7e",
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer.seek": "b86a9fe05f956b30",
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:Consumer.on_buffer_drop": "4b57e8a418d5ad9c",
    "faust.transport.consumer:Consumer._commit_offsets": "1a69799041188441",
    "faust.transport.consumer:ThreadDelegateConsumer._commit": "a20eec84e4b2ed50",
    "faust.transport.conductor:Conductor._build_handler": "5c071d1277988c57",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": (
        "c2701bfc3e6f6cad"
    ),
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:Producer.send": "0b5bd08f52e5e2a9",
    "faust.transport.producer:Producer.__init__": "5c53a4b47aa1372b",
    "faust.transport.producer:ProducerBuffer.flush": "26fbebb124ad9c98",
    "faust.transport.producer:ProducerBuffer._send_pending": "4a9d5f932b56bc68",
    "faust.app.base:App.create_event": "15fea3d1e95e6625",
    "faust.transport.producer:ProducerBuffer.put": "bf26dfbc01d91088",
    "faust.transport.producer:ProducerBuffer.size": "b543a978fdece62e",
    "faust.tables.manager:TableManager.on_start": "365dd25fbc0e0684",
    "faust.tables.manager:TableManager.recovery": "f0bf5de78b4c3d23",
    "faust.tables.recovery:Recovery._slurp_changelogs": "7825c7e50f766d5a",
    "faust.tables.recovery:Recovery._build_offsets": "27eec86be06cb51f",
    "faust.streams:Stream.__aiter__": "e815c0e831f1d2cc",
    "faust.streams:Stream._py_aiter": "3a48ee257a65435b",
    "faust.streams:Stream.events": "c62f4dd3a73fe7aa",
    # exactly-once mode (transactions.py): overridden, or called and relied upon
    "faust.transport.consumer:TransactionManager.send": "b8d126be9f10fc69",
    "faust.transport.consumer:TransactionManager.commit": "fbb29c3467ac8bfa",
    "faust.transport.consumer:TransactionManager.on_rebalance": "2c190b35003af25c",
    "faust.transport.consumer:TransactionManager.on_partitions_revoked": "6c0e120716813506",
    "faust.transport.drivers.aiokafka:Producer.flush": "36d0cb3615f65b01",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._highwaters": "a7f4f97d9f32aca2",
    "faust.transport.drivers.aiokafka:Producer.commit_transactions": "70091e6f431974e9",
    "faust.transport.drivers.aiokafka:Producer.begin_transaction": "970978bd2a00bb12",
    "faust.transport.drivers.aiokafka:Producer.stop_transaction": "ba24cb80581302aa",
    # write-back tables (write_back.py): bypassed on set, or called and relied upon
    "faust.tables.manager:TableManager.on_rebalance": "2d2c23a07bf54328",
    "faust.tables.table:Table.on_key_set": "a370e35ca55c2c7e",
    "faust.tables.table:Table.on_key_del": "4f2900b2f9d24a08",
    "faust.tables.base:Collection.send_changelog": "3dd3884e1b5fc0e1",
    "faust.tables.base:Collection._on_changelog_sent": "60122c86a120d82c",
    "faust.stores.rocksdb:Store._set": "4227e561e288d941",
    "faust.stores.rocksdb:Store.set_persisted_offset": "b4c811926678346e",
    "faust.stores.rocksdb:Store.revoke_partitions": "3f85447a24fc34ff",
    "mode.utils.collections:ManagedUserDict.__setitem__": "f3bdf602abc08dd1",
    "mode.utils.collections:FastUserDict.__getitem__": "eb240364b8add831",
    # write-through tables' get_raw / put_raw (write_through.py): what they stand for
    "mode.utils.collections:ManagedUserDict.__getitem__": "9fb8a44e8d5e9994",
    "faust.tables.table:Table.on_key_get": "609b38a392aad194",
    "faust.stores.base:SerializedStore.__getitem__": "059a9eb349de2114",
    "faust.stores.base:SerializedStore.__setitem__": "6cadf304f59f254d",
    "faust.stores.rocksdb:Store._get": "7ae8dfd6d7754a59",
    # the Kafka clients' metadata task, wrapped (orderstream/kafka/metadata_guard.py)
    "faust.transport.drivers.aiokafka:Producer._new_producer": "e72355c3430ed02f",
    "aiokafka.client:AIOKafkaClient._md_synchronizer": "e0421bffa9a7735a",
    "aiokafka.client:AIOKafkaClient.force_metadata_update": "cb7befef21c8f3f9",
    # each record's future made by the loop (producer.py `LoopFutures`): copied, or relied upon
    "aiokafka.producer.message_accumulator:MessageAccumulator._append_batch": "4762abfc42cbaa15",
    "aiokafka.producer.message_accumulator:MessageBatch.append": "e3ff2fc253fdd6ce",
    "aiokafka.producer.message_accumulator:MessageAccumulator.add_message": "56ff7e6c19185f83",
    "aiokafka.producer.message_accumulator:MessageAccumulator.__init__": "eb57f3c1d5c7657b",
    "aiokafka.producer.producer:AIOKafkaProducer.__init__": "fd6f2966fb3dc883",
}


class FaustVersionError(OrderstreamError):
    pass


def check_faust_version() -> None:
    """Our Faust classes were written against one faust-streaming and one aiokafka: refuse any
    other."""
    for package, pinned, name in (
        ("faust-streaming", FAUST_VERSION, "FAUST_VERSION"),
        ("aiokafka", AIOKAFKA_VERSION, "AIOKAFKA_VERSION"),
    ):
        installed = version(package)
        if installed != pinned:
            raise FaustVersionError(
                f"{package} {installed} is installed, but orderstream's Faust classes "
                f"(orderstream/faust_ext) were written for {pinned}: install {package}=="
                f"{pinned} (pyproject.toml), or review orderstream/faust_ext against the new "
                f"version and update {name} and the hashes in OVERRIDES"
            )


def source_hash(ref: str) -> str:
    """sha256 (first 16 digits) of the source of `module:Class.attr` (a property: its getter)."""
    module_name, path = ref.split(":")
    obj: object = importlib.import_module(module_name)
    for part in path.split("."):
        obj = inspect.getattr_static(obj, part)
    obj = getattr(obj, "fget", obj)  # a property
    obj = getattr(obj, "fun", obj)  # a mode Service.task
    source = inspect.getsource(obj)  # type: ignore[arg-type]
    return hashlib.sha256(source.encode()).hexdigest()[:16]
