from floodgate_client._proto.floodgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HeartbeatRequest(_message.Message):
    __slots__ = ("instance_id", "process_id", "service_type", "service_name", "load", "capacity", "status")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    process_id: str
    service_type: str
    service_name: str
    load: int
    capacity: int
    status: _common_pb2.ProcessStatus
    def __init__(self, instance_id: _Optional[str] = ..., process_id: _Optional[str] = ..., service_type: _Optional[str] = ..., service_name: _Optional[str] = ..., load: _Optional[int] = ..., capacity: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.ProcessStatus, str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("health", "heartbeat_interval_ms", "system_capacity")
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    health: str
    heartbeat_interval_ms: int
    system_capacity: int
    def __init__(self, health: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., system_capacity: _Optional[int] = ...) -> None: ...

class LeaseTasksRequest(_message.Message):
    __slots__ = ("instance_id", "process_id", "max_tasks", "lease_ms", "wait_ms")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    process_id: str
    max_tasks: int
    lease_ms: int
    wait_ms: int
    def __init__(self, instance_id: _Optional[str] = ..., process_id: _Optional[str] = ..., max_tasks: _Optional[int] = ..., lease_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class LeasedTask(_message.Message):
    __slots__ = ("task_id", "lease_id", "payload", "user_type", "enqueued_at_ms", "delivery_count", "lease_expires_at_ms")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    USER_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_id: str
    payload: bytes
    user_type: _common_pb2.UserType
    enqueued_at_ms: int
    delivery_count: int
    lease_expires_at_ms: int
    def __init__(self, task_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., user_type: _Optional[_Union[_common_pb2.UserType, str]] = ..., enqueued_at_ms: _Optional[int] = ..., delivery_count: _Optional[int] = ..., lease_expires_at_ms: _Optional[int] = ...) -> None: ...

class LeaseTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[LeasedTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[LeasedTask, _Mapping]]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("task_id", "lease_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_id: str
    def __init__(self, task_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExtendLeaseRequest(_message.Message):
    __slots__ = ("task_id", "lease_id", "lease_ms")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_id: str
    lease_ms: int
    def __init__(self, task_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class ExtendLeaseResponse(_message.Message):
    __slots__ = ("lease_expires_at_ms",)
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at_ms: int
    def __init__(self, lease_expires_at_ms: _Optional[int] = ...) -> None: ...
